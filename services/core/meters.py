"""The meters Lastmile records, and the one builder of each usage event they are fed by.

Usage ids are a contract between the services that cause usage and reconciliation,
which checks every delivery's history against it. Each id is spelled in exactly one
function below; bookings, status changes, plan runs, route-cost allocation and
reconciliation all call these, so a new meter or action is one edit here.

| action                 | meter              | usage id                            | quantity  |
| ---------------------- | ------------------ | ----------------------------------- | --------- |
| booked                 | deliveries         | `<delivery_id>:booked`              | 1         |
| booked                 | parcel_kg          | `<delivery_id>:parcel_kg`           | kg        |
| booked                 | active_recipients  | `<delivery_id>:recipient`           | 1, key    |
| booked on a quote      | quoted_amount      | `<delivery_id>:quoted` *            | price     |
| planned on a route     | route_km           | `<delivery_id>:route_km`            | km share  |
| DELIVERED              | delivered          | `<delivery_id>:delivered`           | 1         |
| FAILED, attempt n >= 1 | failed_attempts    | `<delivery_id>:failed:<n>`          | 1         |
| CANCELLED              | cancellations      | `<delivery_id>:cancelled`           | 1         |
| CANCELLED once PLANNED | late_cancellations | `<delivery_id>:cancelled_late`      | 1         |
| route cost allocated   | route_cost         | `<route_id>:<tenant_id>:route_cost` | the share |
| a merchant's operation | api_requests       | a fresh id per operation            | 1         |

* instead of `:booked` and `:parcel_kg`: the quote's price covers both.
A route's allocation revisions n >= 2 (late insertions) add `:<n>` to the share's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.core.ids import new_id


@dataclass(frozen=True)
class Usage:
    """One usage event: `quantity` of `meter` for a tenant at an instant."""

    id: str
    tenant_id: str
    meter: str
    quantity: Decimal
    at: datetime
    key: str | None = None
    area_code: str | None = None
    service_level: str | None = None


class Aggregation(StrEnum):
    """How a period's events of one meter become one quantity."""

    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"


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
METERS = frozenset(CATALOGUE)
"""Price plans charge on these names; recording refuses any other."""

# Every meter a delivery's own history feeds (reconciliation checks them per delivery).
DELIVERY_METERS = (
    "deliveries", "parcel_kg", "active_recipients", "quoted_amount", "route_km", "delivered",
    "failed_attempts", "cancellations", "late_cancellations",
)  # fmt: skip


def _delivery_usage(
    delivery_id: str,
    suffix: str,
    tenant_id: str,
    meter: str,
    quantity: Decimal,
    at: datetime,
    area_code: str | None,
    key: str | None = None,
) -> Usage:
    return Usage(f"{delivery_id}:{suffix}", tenant_id, meter, quantity, at, key, area_code)


def booking_usage(
    delivery_id: str,
    tenant_id: str,
    at: datetime,
    area_code: str,
    weight_grams: int,
    recipient: str,
    quoted_price: Decimal | None,
) -> list[Usage]:
    """What a booking is billed by: the plan's per-delivery and per-kg charges, or
    exactly the quoted price; and the recipient it reaches (hashed, for unique counts)."""
    recipient_key = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:32]
    one = Decimal(1)
    reached = _delivery_usage(
        delivery_id, "recipient", tenant_id, "active_recipients", one, at, area_code, recipient_key
    )
    if quoted_price is not None:
        quoted = _delivery_usage(
            delivery_id, "quoted", tenant_id, "quoted_amount", quoted_price, at, area_code
        )
        return [quoted, reached]
    kg = Decimal(weight_grams) / 1000
    return [
        _delivery_usage(delivery_id, "booked", tenant_id, "deliveries", one, at, area_code),
        _delivery_usage(delivery_id, "parcel_kg", tenant_id, "parcel_kg", kg, at, area_code),
        reached,
    ]


def route_km_usage(
    delivery_id: str, tenant_id: str, km: Decimal, at: datetime, area_code: str
) -> Usage:
    """A planned delivery's share of its route's distance."""
    return _delivery_usage(delivery_id, "route_km", tenant_id, "route_km", km, at, area_code)


def delivered_usage(delivery_id: str, tenant_id: str, at: datetime) -> Usage:
    return _delivery_usage(delivery_id, "delivered", tenant_id, "delivered", Decimal(1), at, None)


def failed_attempt_usage(delivery_id: str, tenant_id: str, attempt: int, at: datetime) -> Usage:
    """Attempts are numbered from 1, so a retried report is recorded once and a second
    real attempt is billed again."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    suffix = f"failed:{attempt}"
    return _delivery_usage(delivery_id, suffix, tenant_id, "failed_attempts", Decimal(1), at, None)


def cancelled_usage(delivery_id: str, tenant_id: str, at: datetime) -> Usage:
    return _delivery_usage(
        delivery_id, "cancelled", tenant_id, "cancellations", Decimal(1), at, None
    )


def late_cancellation_usage(
    delivery_id: str, tenant_id: str, at: datetime, area_code: str | None
) -> Usage:
    """A cancellation once planned: a van's route already counted on the parcel."""
    return _delivery_usage(
        delivery_id, "cancelled_late", tenant_id, "late_cancellations", Decimal(1), at, area_code
    )


def route_cost_usage(
    route_id: str,
    tenant_id: str,
    revision: int,
    amount: Decimal,
    at: datetime,
    area_code: str,
) -> Usage:
    """A merchant's allocated share of a route's cost; revisions from the second on
    (late insertions) carry their number."""
    usage_id = route_cost_usage_id(route_id, tenant_id, revision)
    return Usage(usage_id, tenant_id, "route_cost", amount, at, area_code=area_code)


def route_cost_usage_id(route_id: str, tenant_id: str, revision: int) -> str:
    usage_id = f"{route_id}:{tenant_id}:route_cost"
    return usage_id if revision == 1 else f"{usage_id}:{revision}"


def api_request_usage(tenant_id: str, at: datetime) -> Usage:
    """One merchant operation: a fresh id, as no two requests are the same request."""
    return Usage(new_id("req"), tenant_id, "api_requests", Decimal(1), at)


def expected_delivery_usage_ids(
    delivery_id: str,
    *,
    quoted: bool,
    planned: bool,
    delivered: bool,
    cancelled: bool,
    cancelled_late: bool,
    failures: int,
) -> set[str]:
    """The usage ids a delivery's history calls for, built by the functions above."""
    at, tenant, area = datetime.min, "", ""
    ids = {u.id for u in booking_usage(delivery_id, tenant, at, area, 0, "", _quoted(quoted))}
    if planned:
        ids.add(route_km_usage(delivery_id, tenant, Decimal(0), at, area).id)
    if delivered:
        ids.add(delivered_usage(delivery_id, tenant, at).id)
    if cancelled:
        ids.add(cancelled_usage(delivery_id, tenant, at).id)
    if cancelled_late:
        ids.add(late_cancellation_usage(delivery_id, tenant, at, None).id)
    ids |= {failed_attempt_usage(delivery_id, tenant, n, at).id for n in range(1, failures + 1)}
    return ids


def _quoted(quoted: bool) -> Decimal | None:
    return Decimal(0) if quoted else None
