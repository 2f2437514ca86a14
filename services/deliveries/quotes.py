"""Quotes: what one more delivery would cost a merchant, and which windows are open.

A quote is held for QUOTE_TTL. Booking with it honours its price exactly: the booking
is metered as `quoted_amount` (the quoted price) instead of by the plan's per-delivery
and per-kilogram charges.

Price: what the parcel adds to the merchant's invoice, as billing computes it
(`Pricer`: `services.billing.quoting.marginal_price`, handed in by the API, so the
delivery domain holds no billing rules).

Windows: two-hour slots of the delivery day. A slot is open while the deliveries
already booked or planned there (each spread evenly over its own window) leave room
for one more, against a capacity of STOPS_PER_VAN_HOUR for every hour of a shift
that overlaps the slot. Once the day's routes are out, only the slots in which one of
them that has not left can still take the parcel are offered (`LivePlan`, the
planner's insertion check, handed in by the API).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import Session

from services.core import areas
from services.core.models import Quote, ServiceArea
from services.deliveries import repository
from services.deliveries.validation import Dropoff, Parcel, validate_shipment

QUOTE_TTL = timedelta(minutes=15)
SLOT = timedelta(hours=2)
STOPS_PER_VAN_HOUR = 6
Pricer = Callable[[Session, str, int, datetime], tuple[int, str]]
"""(session, tenant, parcel grams, now) -> what it adds to the invoice: minor units, currency."""
Window = tuple[datetime, datetime]
LivePlan = Callable[
    [Session, ServiceArea, date, Dropoff, Parcel, list[Window]], list[Window] | None
]
"""(session, area, day, drop-off, parcel, windows) -> those the day's published routes can
still take the parcel in, or None when the day has none (the planner's
`live.servable_windows`, handed in by the API)."""


@dataclass(frozen=True)
class QuoteRequest:
    service_area: str
    dropoff: Dropoff
    parcel: Parcel
    date: date | None = None


def create_quote(
    session: Session,
    tenant_id: str,
    request: QuoteRequest,
    now: datetime,
    price_of: Pricer,
    sandbox: bool = False,
    live_plan: LivePlan | None = None,
) -> Quote:
    """Quote a delivery: billing's price, and the windows open for it. Once the day's
    routes are out, `live_plan` narrows the windows to those the routes can take it in."""
    area, day = validate_shipment(
        session, request.service_area, request.dropoff, request.parcel, request.date, now
    )
    price, currency = price_of(session, tenant_id, request.parcel.weight_grams, now)
    windows = open_windows(session, area, day, now)
    if live_plan is not None:
        servable = live_plan(session, area, day, request.dropoff, request.parcel, windows)
        if servable is not None:
            windows = servable
    quote = Quote(
        tenant_id=tenant_id,
        sandbox=sandbox,
        area_id=area.id,
        date=day,
        dropoff_lat=request.dropoff.lat,
        dropoff_lng=request.dropoff.lng,
        weight_grams=request.parcel.weight_grams,
        price_minor=price,
        currency=currency,
        windows=[[a.isoformat(), b.isoformat()] for a, b in windows],
        expires_at=now + QUOTE_TTL,
        created_at=now,
    )
    session.add(quote)
    return quote


def open_windows(
    session: Session, area: ServiceArea, day: date, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The day's two-hour slots that still have room for one more delivery."""
    opens, closes = areas.delivery_day(area, day)
    slots = []
    start = opens
    while start + SLOT <= closes:
        slots.append((start.astimezone(UTC), (start + SLOT).astimezone(UTC)))
        start += SLOT
    booked = repository.open_windows_of_day(session, area.id, day)
    shifts = areas.shifts_of(session, area.id)
    midnight = areas.local_midnight(area, day)
    open_slots = []
    for slot_start, slot_end in slots:
        if slot_end <= now + timedelta(hours=1):
            continue
        capacity = STOPS_PER_VAN_HOUR * sum(
            _hours(
                (slot_start, slot_end),
                (_at(midnight, shift.starts_at), _at(midnight, shift.ends_at)),
            )
            for shift in shifts
        )
        demand = sum(
            _hours((slot_start, slot_end), (a, b)) / max(_hours((a, b), (a, b)), 1e-9)
            for a, b in booked
        )
        if demand + 1 <= capacity:
            open_slots.append((slot_start, slot_end))
    return open_slots


def _at(midnight: datetime, moment: time) -> datetime:
    return datetime.combine(midnight.date(), moment, tzinfo=midnight.tzinfo)


def _hours(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    return max(overlap.total_seconds(), 0.0) / 3600
