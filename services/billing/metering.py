"""Usage as billing reads it: events parsed from JSON, and a tenant's usage per day.

The meters and the usage each action records are core's (`services.core.meters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func
from sqlmodel import Session, col, select

from services.billing.pricing import PricingError, parse_event
from services.core.meters import CATALOGUE, METERS, Aggregation, Usage
from services.core.models import UsageEvent
from services.core.usage import UsageError, period_of


def parse_usage(data: Any, where: str) -> Usage:
    """A usage event from JSON (the contract's event shape plus optional dimensions).

    Reuses the pricing engine's parser for the contract fields, so `billing rate` and
    ingestion accept and refuse exactly the same events.
    """
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object")
    dimensions = {name: data.get(name) for name in ("area", "service_level")}
    for name, value in dimensions.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"{where}: {name} must be a non-empty string")
    try:
        event = parse_event({k: v for k, v in data.items() if k not in dimensions})
    except PricingError as error:
        raise UsageError(f"{where}: {error}") from None
    if event.meter not in METERS:
        raise UsageError(f"{where}: unknown meter {event.meter!r}")
    return Usage(
        id=event.id,
        tenant_id=event.tenant,
        meter=event.meter,
        quantity=event.quantity,
        at=event.at,
        key=event.key,
        area_code=dimensions["area"],
        service_level=dimensions["service_level"],
    )


@dataclass(frozen=True)
class DailyUsage:
    day: date
    meter: str
    area_code: str | None
    quantity: Decimal
    events: int


def usage_by_day(
    session: Session,
    tenant_id: str,
    start: datetime,
    end: datetime,
    meters: list[str] | None = None,
    by_area: bool = False,
) -> list[DailyUsage]:
    """A tenant's usage per UTC day and meter (optionally per area), aggregated in SQL.

    Each meter's quantity uses its catalogue aggregation; `events` counts raw events.
    """
    day: Any = cast(func.timezone("UTC", col(UsageEvent.at)), Date)
    if session.get_bind().dialect.name != "postgresql":
        day = func.date(col(UsageEvent.at))
    area = col(UsageEvent.area_code) if by_area else None
    columns: list[Any] = [
        day.label("day"),
        col(UsageEvent.meter),
        func.coalesce(func.sum(UsageEvent.quantity), 0),
        func.count(),
        func.count(func.distinct(UsageEvent.key)),
        func.coalesce(func.max(UsageEvent.quantity), 0),
    ]
    group: list[Any] = [day, col(UsageEvent.meter)]
    if area is not None:
        columns.append(area)
        group.append(area)
    statement = select(*columns).where(
        UsageEvent.tenant_id == tenant_id, UsageEvent.at >= start, UsageEvent.at < end
    )
    if start.tzinfo is not None:
        # An event from `start` on is billed to its own month or a later one: this bounds
        # the scan of the tenant's (tenant, billed month) index from below.
        since = period_of(start.astimezone(UTC))
        statement = statement.where(col(UsageEvent.billed_period) >= since)
    if meters:
        statement = statement.where(col(UsageEvent.meter).in_(meters))
    rows = session.exec(statement.group_by(*group).order_by(*group)).all()
    result = []
    for row in rows:
        meter = row[1]
        aggregation = CATALOGUE[meter].aggregation if meter in CATALOGUE else Aggregation.SUM
        quantity = {
            Aggregation.SUM: row[2],
            Aggregation.COUNT: row[3],
            Aggregation.UNIQUE_COUNT: row[4],
            Aggregation.MAX: row[5],
        }[aggregation]
        raw_day = row[0]
        result.append(
            DailyUsage(
                day=raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day)),
                meter=meter,
                area_code=row[6] if by_area else None,
                quantity=Decimal(quantity),
                events=row[3],
            )
        )
    return result
