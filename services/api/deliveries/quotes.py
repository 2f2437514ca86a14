"""Quotes: what one more delivery would cost a merchant, and which windows are open.

A quote is held for QUOTE_TTL. Booking with it honours its price exactly: the booking
is metered as `quoted_amount` (the quoted price) instead of by the plan's per-delivery
and per-kilogram charges.

Price: the marginal price under the merchant's plan this month, i.e. what the
`deliveries` and `parcel_kg` lines would grow by with this parcel (tiers and free
units included; the minimum commitment is left out, it is not a per-delivery price).

Windows: two-hour slots of the delivery day. A slot is open while the deliveries
already booked or planned there (each spread evenly over its own window) leave room
for one more, against a capacity of STOPS_PER_VAN_HOUR for every hour of a shift
that overlaps the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from services.api.deliveries import service
from services.api.deliveries.errors import UserErrorCode, UserErrors
from services.billing.invoicing import period_of, preview
from services.billing.money import to_minor
from services.billing.plans import parsed_plan, plans_for_period
from services.billing.pricing import price_line
from services.core import areas
from services.core.db import across_tenants
from services.core.models import Delivery, DeliveryStatus, Quote, ServiceArea, Shift

QUOTE_TTL = timedelta(minutes=15)
SLOT = timedelta(hours=2)
STOPS_PER_VAN_HOUR = 6
PRICED_METERS = {"deliveries": Decimal(1), "parcel_kg": None}  # None: the parcel's weight


@dataclass(frozen=True)
class QuoteRequest:
    service_area: str
    dropoff: service.Dropoff
    parcel: service.Parcel
    date: date | None = None


def create_quote(session: Session, tenant_id: str, request: QuoteRequest, now: datetime) -> Quote:
    area, day = service.validate_shipment(
        session, request.service_area, request.dropoff, request.parcel, request.date, now
    )
    price, currency = marginal_price(session, tenant_id, request.parcel.weight_grams, now)
    quote = Quote(
        tenant_id=tenant_id,
        area_id=area.id,
        date=day,
        dropoff_lat=request.dropoff.lat,
        dropoff_lng=request.dropoff.lng,
        weight_grams=request.parcel.weight_grams,
        price_minor=price,
        currency=currency,
        windows=[[a.isoformat(), b.isoformat()] for a, b in open_windows(session, area, day, now)],
        expires_at=now + QUOTE_TTL,
        created_at=now,
    )
    session.add(quote)
    return quote


def marginal_price(
    session: Session, tenant_id: str, weight_grams: int, now: datetime
) -> tuple[int, str]:
    """What this parcel adds to the merchant's invoice this month, in minor units."""
    plan_row = plans_for_period(session, period_of(now), [tenant_id]).get(tenant_id)
    plan = parsed_plan(plan_row) if plan_row else None
    if plan is None or plan.charge_for("quoted_amount") is None:
        raise UserErrors.one(
            ("serviceArea",), "Your price plan does not offer quotes.", UserErrorCode.INVALID
        )
    current = preview(session, tenant_id, now)
    so_far = {line.meter: line.quantity for line in current[1].lines} if current else {}
    added = Decimal(0)
    for meter, step in PRICED_METERS.items():
        charge = plan.charge_for(meter)
        if charge is None:
            continue
        quantity = so_far.get(meter, Decimal(0))
        extra = step if step is not None else Decimal(weight_grams) / 1000
        before = price_line(charge, quantity, plan.currency).amount
        after = price_line(charge, quantity + extra, plan.currency).amount
        added += after - before
    return to_minor(added, plan.currency), plan.currency.code


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
    with across_tenants(session):  # every merchant's bookings fill the vans
        booked = session.exec(
            select(Delivery.window_start, Delivery.window_end).where(
                Delivery.area_id == area.id,
                Delivery.date == day,
                col(Delivery.status).in_([DeliveryStatus.BOOKED, DeliveryStatus.PLANNED]),
                col(Delivery.sandbox).is_(False),
            )
        ).all()
    shifts = session.exec(select(Shift).where(Shift.area_id == area.id)).all()
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
