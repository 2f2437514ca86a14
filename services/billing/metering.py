"""Meters, the usage each delivery action must produce, and usage reports from SQL.

The usage ids per action are a contract between the services that cause usage and
reconciliation, which checks every delivery against it:

| action                | meter             | usage id                            | quantity  |
| --------------------- | ----------------- | ----------------------------------- | --------- |
| booked                | deliveries        | `<delivery_id>:booked`              | 1         |
| booked                | parcel_kg         | `<delivery_id>:parcel_kg`           | kg        |
| booked                | active_recipients | `<delivery_id>:recipient`           | 1, key    |
| planned on a route    | route_km          | `<delivery_id>:route_km`            | km share  |
| DELIVERED             | delivered         | `<delivery_id>:delivered`           | 1         |
| FAILED, attempt n>=1  | failed_attempts   | `<delivery_id>:failed:<n>`          | 1         |
| CANCELLED             | cancellations     | `<delivery_id>:cancelled`           | 1         |
| CANCELLED once PLANNED| late_cancellations| `<delivery_id>:cancelled_late`      | 1         |
| booked on a quote     | quoted_amount     | `<delivery_id>:quoted` *            | price     |
| route cost allocated  | route_cost        | `<route_id>:<tenant_id>:route_cost` | the share |

* instead of `:booked` and `:parcel_kg`: the quote's price covers both.
A route's later allocation revisions n >= 2 (late insertions) add `:<n>` to the share's id.

Services that change a delivery's status call `usage_for_status_change` and record
the result with `record_usage` in the same transaction as the status change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, func
from sqlmodel import Session, col, select

from services.billing.pricing import Aggregation, PricingError, parse_event
from services.core.models import Delivery, DeliveryStatus, UsageEvent
from services.core.usage import METERS, Usage, UsageError, period_of


@dataclass(frozen=True)
class Meter:
    code: str
    aggregation: Aggregation
    unit: str
    description: str


CATALOGUE: Mapping[str, Meter] = {
    meter.code: meter
    for meter in (
        Meter("deliveries", Aggregation.COUNT, "delivery", "Deliveries booked"),
        Meter("parcel_kg", Aggregation.SUM, "kg", "Parcel weight booked"),
        Meter("active_recipients", Aggregation.UNIQUE_COUNT, "recipient", "Distinct recipients"),
        Meter("delivered", Aggregation.COUNT, "delivery", "Deliveries completed"),
        Meter("failed_attempts", Aggregation.COUNT, "attempt", "Failed delivery attempts"),
        Meter("cancellations", Aggregation.COUNT, "delivery", "Deliveries cancelled"),
        Meter("late_cancellations", Aggregation.COUNT, "delivery", "Cancelled once planned"),
        Meter(
            "quoted_amount", Aggregation.SUM, "currency", "Bookings made on a quote, at its price"
        ),
        Meter("api_requests", Aggregation.SUM, "request", "API requests"),
        Meter("route_km", Aggregation.SUM, "km", "Share of planned route distance"),
        Meter("route_cost", Aggregation.SUM, "currency", "Allocated share of route cost"),
    )
}
assert set(CATALOGUE) == METERS, "every recorded meter is described here"

BOOKING_SUFFIXES = ("booked", "parcel_kg", "recipient")
QUOTED_BOOKING_SUFFIXES = ("quoted", "recipient")


def usage_for_status_change(
    delivery: Delivery, status: DeliveryStatus, at: datetime, attempt: int = 1
) -> list[Usage]:
    """The usage events a status change causes (see the table above); none for others.

    `attempt` numbers FAILED attempts of the same delivery from 1, so a retried
    failure report is recorded once and a second real attempt is billed again.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    suffix_and_meter = {
        DeliveryStatus.DELIVERED: ("delivered", "delivered"),
        DeliveryStatus.FAILED: (f"failed:{attempt}", "failed_attempts"),
        DeliveryStatus.CANCELLED: ("cancelled", "cancellations"),
    }.get(status)
    if suffix_and_meter is None:
        return []
    suffix, meter = suffix_and_meter
    return [
        Usage(
            id=f"{delivery.id}:{suffix}",
            tenant_id=delivery.tenant_id,
            meter=meter,
            quantity=Decimal(1),
            at=at,
        )
    ]


def route_cost_usage_id(route_id: str, tenant_id: str, revision: int) -> str:
    """A route share's usage id: `:<revision>` is appended from the second revision on."""
    usage_id = f"{route_id}:{tenant_id}:route_cost"
    return usage_id if revision == 1 else f"{usage_id}:{revision}"


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
