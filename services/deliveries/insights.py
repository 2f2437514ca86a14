"""A merchant's deliveries in figures: counts by status over days, on-time rate, failed
attempts by reason. Aggregated in SQL (a tenant may have many thousands of deliveries);
live deliveries only, sandbox ones never count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.core.models import Delivery, DeliveryEvent, DeliveryStatus


def status_counts(
    session: Session, tenant_id: str, first: date, last: date
) -> dict[DeliveryStatus, int]:
    """How many of the tenant's deliveries for days first..last stand in each status."""
    rows = session.exec(
        select(Delivery.status, func.count())
        .where(
            Delivery.tenant_id == tenant_id,
            col(Delivery.sandbox).is_(False),
            Delivery.date >= first,
            Delivery.date <= last,
        )
        .group_by(col(Delivery.status))
    ).all()
    return {DeliveryStatus(status): count for status, count in rows}


def daily_counts(
    session: Session, tenant_id: str, first: date, last: date
) -> dict[date, dict[DeliveryStatus, int]]:
    """Per delivery day first..last, the tenant's deliveries by status."""
    rows = session.exec(
        select(col(Delivery.date), col(Delivery.status), func.count())
        .where(
            Delivery.tenant_id == tenant_id,
            col(Delivery.sandbox).is_(False),
            Delivery.date >= first,
            Delivery.date <= last,
        )
        .group_by(col(Delivery.date), col(Delivery.status))
    ).all()
    result: dict[date, dict[DeliveryStatus, int]] = {}
    for day, status, count in rows:
        result.setdefault(day, {})[DeliveryStatus(status)] = count
    return result


@dataclass(frozen=True)
class OnTime:
    delivered: int
    on_time: int

    @property
    def rate(self) -> float | None:
        return self.on_time / self.delivered if self.delivered else None


def on_time(session: Session, tenant_id: str, since: datetime) -> OnTime:
    """Deliveries handed over since `since`, and how many of them within their window."""
    delivered_at = col(DeliveryEvent.at)
    row = session.exec(
        select(
            func.count(),
            func.count().filter(delivered_at <= col(Delivery.window_end)),
        )
        .select_from(DeliveryEvent)
        .join(Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id))
        .where(
            DeliveryEvent.tenant_id == tenant_id,
            DeliveryEvent.status == DeliveryStatus.DELIVERED,
            delivered_at >= since,
            col(Delivery.sandbox).is_(False),
        )
    ).one()
    return OnTime(delivered=row[0], on_time=row[1])


def failures_by_reason(session: Session, tenant_id: str, since: datetime) -> dict[str, int]:
    """Failed attempts since `since`, by reason, most frequent first."""
    rows = session.exec(
        select(DeliveryEvent.reason, func.count())
        .join(Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id))
        .where(
            DeliveryEvent.tenant_id == tenant_id,
            DeliveryEvent.status == DeliveryStatus.FAILED,
            DeliveryEvent.at >= since,
            col(Delivery.sandbox).is_(False),
        )
        .group_by(col(DeliveryEvent.reason))
        .order_by(func.count().desc())
    ).all()
    return {reason or "OTHER": count for reason, count in rows}
