"""Booking deliveries: validation, idempotency, and everything a booking writes.

A booking writes, in one transaction: the delivery, its first tracking event, the
usage events it is billed by, and an outbox event announcing it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, select

from services.api import idempotency
from services.api.deliveries.errors import UserError, UserErrorCode, UserErrors
from services.billing.money import currency_for, from_minor
from services.core import areas
from services.core.models import Delivery, DeliveryEvent, DeliveryStatus, Quote, ServiceArea
from services.core.outbox import emit
from services.core.usage import Usage, record_usage

MAX_WEIGHT_GRAMS = 30_000  # one person can carry it to a door
MAX_SIDE_CM = 150
MIN_WINDOW = timedelta(minutes=30)
BOOKING_HORIZON_DAYS = 60
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{6,20}$")

_OP = "bookDelivery"
Reject = Callable[[tuple[str, ...], str, UserErrorCode], None]


@dataclass(frozen=True)
class Dropoff:
    lat: float
    lng: float
    line1: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Recipient:
    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Parcel:
    weight_grams: int
    length_cm: int | None = None
    width_cm: int | None = None
    height_cm: int | None = None


@dataclass(frozen=True)
class BookingRequest:
    reference: str
    service_area: str
    dropoff: Dropoff
    recipient: Recipient
    parcel: Parcel
    date: date | None = None
    time_window: tuple[datetime, datetime] | None = None
    idempotency_key: str | None = None
    quote_id: str | None = None

    def fingerprint(self) -> str:
        """A hash of everything but the idempotency key, to tell a replay from a conflict."""
        content = asdict(self)
        content.pop("idempotency_key")
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def book(
    session: Session, tenant_id: str, request: BookingRequest, now: datetime, sandbox: bool = False
) -> Delivery:
    """Book one delivery, or replay the one booked earlier with the same idempotency key.

    Raises UserErrors when the input is rejected, always before writing anything. Sandbox
    bookings are stored like real ones but never planned onto real routes nor billed.
    """
    [outcome] = book_many(session, tenant_id, [request], now, sandbox)
    if isinstance(outcome, UserErrors):
        raise outcome
    return outcome


def book_many(
    session: Session,
    tenant_id: str,
    requests: list[BookingRequest],
    now: datetime,
    sandbox: bool = False,
) -> list[Delivery | UserErrors]:
    """Book each request on its own terms (a rejected one writes nothing), in one go.

    Every request is checked and its idempotency key claimed first; then all the new
    deliveries, their first events, their usage and their outbox events are written
    with one statement per table, which is what makes bulk booking cheap.
    """
    outcomes: list[Delivery | UserErrors] = []
    fresh: dict[str, tuple[Delivery, ServiceArea, Quote | None]] = {}
    for request in requests:
        try:
            outcomes.append(_prepare(session, tenant_id, request, now, sandbox, fresh))
        except UserErrors as rejected:
            outcomes.append(rejected)
    _write(session, tenant_id, list(fresh.values()), now, sandbox)
    return outcomes


def _prepare(
    session: Session,
    tenant_id: str,
    request: BookingRequest,
    now: datetime,
    sandbox: bool,
    fresh: dict[str, tuple[Delivery, ServiceArea, Quote | None]],
) -> Delivery:
    """Check one request and claim its key; the new delivery joins `fresh`, unwritten."""
    key = request.idempotency_key
    digest = request.fingerprint()
    if key is not None and (earlier := idempotency.replay(session, tenant_id, key, _OP, digest)):
        return _replayed(session, earlier, fresh)
    area, day, (window_start, window_end) = _validate(session, request, now)
    quote = None
    if request.quote_id is not None:
        quote = _check_quote(
            session,
            tenant_id,
            request.quote_id,
            area,
            day,
            request.dropoff,
            request.parcel.weight_grams,
            request.time_window,
            now,
        )
    delivery = Delivery(
        tenant_id=tenant_id,
        reference=request.reference,
        sandbox=sandbox,
        area_id=area.id,
        date=day,
        window_start=window_start.astimezone(UTC),
        window_end=window_end.astimezone(UTC),
        dropoff_lat=request.dropoff.lat,
        dropoff_lng=request.dropoff.lng,
        dropoff_line1=request.dropoff.line1,
        dropoff_city=request.dropoff.city,
        dropoff_postal_code=request.dropoff.postal_code,
        dropoff_country=request.dropoff.country,
        recipient_name=request.recipient.name,
        recipient_phone=request.recipient.phone,
        recipient_email=request.recipient.email,
        weight_grams=request.parcel.weight_grams,
        length_cm=request.parcel.length_cm,
        width_cm=request.parcel.width_cm,
        height_cm=request.parcel.height_cm,
        created_at=now,
        updated_at=now,
    )
    if key is not None and (
        earlier := idempotency.claim(
            session, tenant_id, key, _OP, digest, {"delivery_id": delivery.id}
        )
    ):
        return _replayed(session, earlier, fresh)  # a concurrent request with this key won
    if quote is not None:
        # Written at once: the quote must point at a stored delivery before any other
        # request of this batch reads it.
        _write(session, tenant_id, [(delivery, area, quote)], now, sandbox)
    else:
        fresh[delivery.id] = (delivery, area, None)
    return delivery


def _write(
    session: Session,
    tenant_id: str,
    bookings: list[tuple[Delivery, ServiceArea, Quote | None]],
    now: datetime,
    sandbox: bool,
) -> None:
    """Everything a booking writes, for many bookings at once."""
    if not bookings:
        return
    session.add_all([delivery for delivery, _, _ in bookings])
    session.add_all(
        [
            DeliveryEvent(
                tenant_id=tenant_id, delivery_id=delivery.id, status=DeliveryStatus.BOOKED, at=now
            )
            for delivery, _, _ in bookings
        ]
    )
    session.flush()
    for delivery, _, quote in bookings:
        if quote is not None:
            quote.delivery_id = delivery.id
            session.add(quote)
    if not sandbox:
        record_usage(
            session,
            [event for booking in bookings for event in _booking_usage(*booking)],
        )
    for delivery, _, _ in bookings:
        emit(
            session,
            "delivery.booked",
            {"delivery_id": delivery.id, "reference": delivery.reference, "status": "BOOKED"},
            tenant_id,
        )


def _check_quote(
    session: Session,
    tenant_id: str,
    quote_id: str,
    area: ServiceArea,
    day: date,
    dropoff: Dropoff,
    weight_grams: int,
    window: tuple[datetime, datetime] | None,
    now: datetime,
) -> Quote:
    """The quote a booking may use, locked; UserErrors when it does not fit the booking."""
    quote = session.exec(
        select(Quote).where(Quote.id == quote_id, Quote.tenant_id == tenant_id).with_for_update()
    ).first()
    if quote is None:
        raise UserErrors.one(("quoteId",), f"No quote {quote_id!r}.", UserErrorCode.NOT_FOUND)
    if quote.delivery_id is not None:
        raise UserErrors.one(
            ("quoteId",), "This quote was already used.", UserErrorCode.QUOTE_EXPIRED
        )
    if quote.expires_at <= now:
        raise UserErrors.one(("quoteId",), "This quote has expired.", UserErrorCode.QUOTE_EXPIRED)
    same = (
        quote.area_id == area.id
        and quote.date == day
        and quote.dropoff_lat == dropoff.lat
        and quote.dropoff_lng == dropoff.lng
        and quote.weight_grams == weight_grams
    )
    if not same:
        raise UserErrors.one(
            ("quoteId",),
            "The booking's area, day, drop-off or weight differs from the quote's.",
            UserErrorCode.QUOTE_MISMATCH,
        )
    offered = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in quote.windows]
    if window is not None and window not in offered:
        raise UserErrors.one(
            ("timeWindow",), "Choose one of the quote's time windows.", UserErrorCode.QUOTE_MISMATCH
        )
    return quote


def _replayed(
    session: Session,
    earlier: dict[str, str],
    fresh: dict[str, tuple[Delivery, ServiceArea, Quote | None]],
) -> Delivery:
    """The delivery an earlier request made: stored, or booked earlier in this batch."""
    if earlier["delivery_id"] in fresh:
        return fresh[earlier["delivery_id"]][0]
    delivery = session.get(Delivery, earlier["delivery_id"])
    assert delivery is not None  # deliveries are never deleted
    return delivery


def _booking_usage(delivery: Delivery, area: ServiceArea, quote: Quote | None) -> list[Usage]:
    """Metered as the plan prices bookings, or at exactly the quoted price."""
    recipient = delivery.recipient_phone or delivery.recipient_email or delivery.recipient_name
    recipient_key = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:32]

    def usage(suffix: str, meter: str, quantity: Decimal, key: str | None = None) -> Usage:
        return Usage(
            id=f"{delivery.id}:{suffix}",
            tenant_id=delivery.tenant_id,
            meter=meter,
            quantity=quantity,
            at=delivery.created_at,
            key=key,
            area_code=area.code,
        )

    reached = usage("recipient", "active_recipients", Decimal(1), key=recipient_key)
    if quote is not None:
        price = from_minor(quote.price_minor, currency_for(quote.currency))
        return [usage("quoted", "quoted_amount", price), reached]
    return [
        usage("booked", "deliveries", Decimal(1)),
        usage("parcel_kg", "parcel_kg", Decimal(delivery.weight_grams) / 1000),
        reached,
    ]


def _validate(
    session: Session, request: BookingRequest, now: datetime
) -> tuple[ServiceArea, date, tuple[datetime, datetime]]:
    """Check everything, collecting every problem, so one round trip shows them all."""
    errors: list[UserError] = []

    def reject(field: tuple[str, ...], message: str, code: UserErrorCode) -> None:
        errors.append(UserError(field, message, code))

    if not request.reference.strip():
        reject(("reference",), "Reference must not be blank.", UserErrorCode.REQUIRED)
    elif len(request.reference) > 128:
        reject(("reference",), "Reference is longer than 128 characters.", UserErrorCode.TOO_LONG)
    _validate_contact(request.recipient, reject)
    area = _validate_place(session, request.service_area, request.dropoff, request.parcel, reject)
    if area is None:
        raise UserErrors(errors)
    day, window = _validate_schedule(area, request.date, request.time_window, now, reject)
    if errors:
        raise UserErrors(errors)
    return area, day, window


def validate_shipment(
    session: Session,
    area_code: str,
    dropoff: Dropoff,
    parcel: Parcel,
    day: date | None,
    now: datetime,
) -> tuple[ServiceArea, date]:
    """The area and day of a parcel to a drop-off (for quotes), or UserErrors."""
    errors: list[UserError] = []

    def reject(field: tuple[str, ...], message: str, code: UserErrorCode) -> None:
        errors.append(UserError(field, message, code))

    area = _validate_place(session, area_code, dropoff, parcel, reject)
    if area is None:
        raise UserErrors(errors)
    resolved, _ = _validate_schedule(area, day, None, now, reject)
    if errors:
        raise UserErrors(errors)
    return area, resolved


def _validate_place(
    session: Session, area_code: str, dropoff: Dropoff, parcel: Parcel, reject: Reject
) -> ServiceArea | None:
    """The parcel, the drop-off and its area; None when the area does not exist."""
    _validate_parcel(parcel, reject)
    if not (-90 <= dropoff.lat <= 90 and -180 <= dropoff.lng <= 180):
        reject(("dropoff",), "Coordinates are not on Earth.", UserErrorCode.INVALID)
        dropoff = Dropoff(lat=0.0, lng=0.0)
    area = areas.get_area(session, area_code)
    if area is None:
        reject(
            ("serviceArea",),
            f"No service area has the code {area_code!r}.",
            UserErrorCode.SERVICE_AREA_NOT_FOUND,
        )
        return None
    if not areas.contains(area, dropoff.lat, dropoff.lng):
        reject(
            ("dropoff",),
            f"The drop-off is outside service area {area.code!r}.",
            UserErrorCode.OUTSIDE_SERVICE_AREA,
        )
    return area


def _validate_schedule(
    area: ServiceArea,
    requested_day: date | None,
    time_window: tuple[datetime, datetime] | None,
    now: datetime,
    reject: Reject,
) -> tuple[date, tuple[datetime, datetime]]:
    """Resolve the delivery day and window, defaulting to the whole delivery day tomorrow."""
    today = areas.local_day_of(area, now)
    if requested_day is not None:
        day = requested_day
    elif time_window is not None:
        day = areas.local_day_of(area, time_window[0])
    else:
        day = areas.next_delivery_date(area, now)
    last = today + timedelta(days=BOOKING_HORIZON_DAYS)
    if not today <= day <= last:
        reject(
            ("date",),
            f"Deliveries can be booked from {today} to {last} (local time in {area.code!r}).",
            UserErrorCode.DATE_NOT_BOOKABLE,
        )
    opens, closes = areas.delivery_day(area, day)
    if time_window is None:
        return day, (opens, closes)
    start, end = time_window
    if start.tzinfo is None or end.tzinfo is None:
        reject(("timeWindow",), "Times must carry a UTC offset.", UserErrorCode.INVALID_TIME_WINDOW)
        return day, (opens, closes)
    if end - start < MIN_WINDOW:
        reject(
            ("timeWindow",),
            "The window must end at least 30 minutes after it starts.",
            UserErrorCode.INVALID_TIME_WINDOW,
        )
    elif start < opens or end > closes:
        reject(
            ("timeWindow",),
            f"The window must lie within {area.code!r}'s delivery hours on {day}: "
            f"{opens.isoformat()} to {closes.isoformat()}.",
            UserErrorCode.TIME_WINDOW_OUTSIDE_SERVICE_HOURS,
        )
    elif end <= now:
        reject(("timeWindow",), "The window is in the past.", UserErrorCode.INVALID_TIME_WINDOW)
    return day, (start, end)


def validate_schedule(
    area: ServiceArea, request: BookingRequest, now: datetime
) -> tuple[date, tuple[datetime, datetime]]:
    """The day and UTC window a request asks for, or UserErrors saying why it cannot have them."""
    errors: list[UserError] = []
    day, (start, end) = _validate_schedule(
        area,
        request.date,
        request.time_window,
        now,
        lambda *error: errors.append(UserError(*error)),
    )
    if errors:
        raise UserErrors(errors)
    return day, (start.astimezone(UTC), end.astimezone(UTC))


def validate_recipient(recipient: Recipient) -> None:
    errors: list[UserError] = []
    _validate_contact(recipient, lambda *error: errors.append(UserError(*error)))
    if errors:
        raise UserErrors(errors)


def _validate_contact(recipient: Recipient, reject: Reject) -> None:
    if not recipient.name.strip():
        reject(("recipient", "name"), "Recipient name must not be blank.", UserErrorCode.REQUIRED)
    if recipient.email is not None and not _EMAIL.match(recipient.email):
        reject(("recipient", "email"), "Not an email address.", UserErrorCode.INVALID)
    if recipient.phone is not None and not _PHONE.match(recipient.phone):
        reject(("recipient", "phone"), "Not a phone number.", UserErrorCode.INVALID)


def _validate_parcel(parcel: Parcel, reject: Reject) -> None:
    if parcel.weight_grams <= 0:
        reject(("parcel", "weightGrams"), "Weight must be positive.", UserErrorCode.INVALID)
    elif parcel.weight_grams > MAX_WEIGHT_GRAMS:
        reject(
            ("parcel", "weightGrams"),
            f"Parcels weigh at most {MAX_WEIGHT_GRAMS} g.",
            UserErrorCode.PARCEL_TOO_HEAVY,
        )
    for name, side in (
        ("lengthCm", parcel.length_cm),
        ("widthCm", parcel.width_cm),
        ("heightCm", parcel.height_cm),
    ):
        if side is None:
            continue
        if side <= 0:
            reject(("parcel", name), "Dimensions must be positive.", UserErrorCode.INVALID)
        elif side > MAX_SIDE_CM:
            reject(
                ("parcel", name),
                f"No side may exceed {MAX_SIDE_CM} cm.",
                UserErrorCode.PARCEL_TOO_LARGE,
            )
