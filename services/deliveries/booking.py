"""Booking deliveries: idempotency, and everything a booking writes.

A booking writes, in one transaction: the delivery, its first tracking event, the
usage events it is billed by, and an outbox event announcing it. What its input must
satisfy is `validation`'s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table
from sqlmodel import Session, select

from services.core import idempotency, logs, metrics
from services.core.db import insert_rows, on_commit
from services.core.errors import UserErrorCode, UserErrors
from services.core.ids import new_id, unguessable_id
from services.core.meters import Usage, booking_usage
from services.core.models import Delivery, DeliveryEvent, DeliveryStatus, Quote, ServiceArea
from services.core.money import currency_for, from_minor
from services.core.outbox import emit_all
from services.core.principal import Merchant
from services.core.usage import record_usage
from services.deliveries import repository
from services.deliveries.validation import (
    Dropoff,
    Parcel,
    Problems,
    Recipient,
    check_contact,
    check_place,
    check_reference,
    check_schedule,
)

_OP = "bookDelivery"
# json.dumps(sort_keys=True, default=str), without building an encoder per call.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, default=str)
_DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
logger = logs.get_logger(__name__)
_DELIVERY_EVENT: Table = DeliveryEvent.__table__  # type: ignore[attr-defined]


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
        """A hash of everything but the idempotency key, to tell a replay from a conflict.

        The same JSON as `dataclasses.asdict` would give, built without its deep copies
        (a third of a bulk booking's validation): stored keys keep matching.
        """
        content = {
            **vars(self),
            "dropoff": vars(self.dropoff),
            "recipient": vars(self.recipient),
            "parcel": vars(self.parcel),
        }
        del content["idempotency_key"]
        return hashlib.sha256(_FINGERPRINT_JSON.encode(content).encode()).hexdigest()


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


@dataclass
class _Booking:
    """One request on its way through book_many."""

    request: BookingRequest
    digest: str | None = None  # of the input, when it has an idempotency key
    # A valid request's new delivery, as its table row and as a model made of it.
    row: dict[str, Any] | None = None
    delivery: Delivery | None = None  # new, not yet written
    area: ServiceArea | None = None
    quote: Quote | None = None
    rejected: UserErrors | None = None


def book_many(
    session: Session,
    tenant_id: str,
    requests: list[BookingRequest],
    now: datetime,
    sandbox: bool = False,
) -> list[Delivery | UserErrors]:
    """Book each request on its own terms (a rejected one writes nothing), in one go.

    Returned deliveries are read-only values, not attached to the session. The work is
    a fixed number of statements whatever the count, which is what makes bulk booking
    cheap: every request is checked first; then all idempotency keys are claimed with
    one statement; only rejected requests and lost claims look up the earlier request
    (the same key and input replays it, even when the input would now be rejected);
    then each table gets one INSERT for all the new deliveries.
    """
    bookings = [_check(session, tenant_id, request, now, sandbox) for request in requests]
    _reserve_quotes(bookings)
    owners: dict[str, _Booking] = {}  # the first valid request of each key claims it
    for booking in bookings:
        key = booking.request.idempotency_key
        if key is not None and booking.delivery is not None:
            owners.setdefault(key, booking)
    won = idempotency.claim_many(
        session,
        tenant_id,
        _OP,
        {
            key: (owner.digest or "", {"delivery_id": owner.delivery.id})
            for key, owner in owners.items()
            if owner.delivery is not None
        },
        sandbox=sandbox,
    )
    earlier = idempotency.records(
        session,
        tenant_id,
        sorted({b.request.idempotency_key for b in bookings if b.request.idempotency_key} - won),
        sandbox=sandbox,
    )
    replayed = repository.by_ids(
        session,
        {
            str(record.result["delivery_id"])
            for record in earlier.values()
            if record.operation == _OP
        },
    )
    fresh: list[_Booking] = []
    outcomes: list[Delivery | UserErrors] = []
    for booking in bookings:
        try:
            outcome = _resolve(booking, owners, won, earlier, replayed)
        except UserErrors as rejected:
            outcomes.append(rejected)
            continue
        if booking.delivery is not None and outcome is booking.delivery:
            fresh.append(booking)
        outcomes.append(outcome)
    _write(session, tenant_id, fresh, now, sandbox)
    return outcomes


def _check(
    session: Session, tenant_id: str, request: BookingRequest, now: datetime, sandbox: bool
) -> _Booking:
    """Validate one request (nothing is written); a valid one gets its new delivery."""
    booking = _Booking(request)
    try:
        if request.idempotency_key is not None:
            idempotency.check_key(request.idempotency_key)
            booking.digest = request.fingerprint()
        area, day, (window_start, window_end) = _validate(session, request, now)
        if request.quote_id is not None:
            booking.quote = _check_quote(
                session,
                tenant_id,
                request.quote_id,
                area,
                day,
                request.dropoff,
                request.parcel.weight_grams,
                request.time_window,
                now,
                sandbox,
            )
    except UserErrors as rejected:
        booking.rejected = rejected
        return booking
    booking.area = area
    booking.row = dict(
        id=new_id("dlv"),
        tenant_id=tenant_id,
        reference=request.reference,
        sandbox=sandbox,
        tracking_token=unguessable_id("trk"),
        attempt=1,
        status=DeliveryStatus.BOOKED,
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
        eta=None,
        route_id=None,
        stop_number=None,
        unplanned_reason=None,
        created_at=now,
        updated_at=now,
        request_id=logs.request_id(),
    )
    booking.delivery = Delivery.model_construct(**booking.row)
    return booking


def _reserve_quotes(bookings: list[_Booking]) -> None:
    """A quote books one delivery: a later request of the batch on a taken quote fails."""
    taken: set[str] = set()
    for booking in bookings:
        if booking.quote is None or booking.delivery is None:
            continue
        if booking.quote.id in taken:
            booking.delivery = booking.row = None
            booking.rejected = UserErrors.one(
                ("quoteId",), "This quote was already used.", UserErrorCode.QUOTE_EXPIRED
            )
        taken.add(booking.quote.id)


def _resolve(
    booking: _Booking,
    owners: dict[str, _Booking],
    won: set[str],
    earlier: dict[str, Any],
    replayed: dict[str, Delivery],
) -> Delivery:
    """What one request gets: its new delivery, a replay, or (raised) its rejection."""
    key = booking.request.idempotency_key
    if key is not None and key in won:
        owner = owners[key]
        if owner is not booking:  # the same key twice in one batch
            _same_input(owner.digest, booking.digest)
        assert owner.delivery is not None
        return owner.delivery
    if key is not None and key in earlier:
        result = idempotency.same_request(earlier[key], _OP, booking.digest or "")
        return replayed[str(result["delivery_id"])]
    if booking.rejected is not None:
        raise booking.rejected
    assert booking.delivery is not None
    if key is not None:
        # Valid, yet neither claimed nor on record: the earlier record was purged (expired)
        # between the claim and the lookup. Nothing was written; a retry books.
        raise UserErrors.one(
            ("idempotencyKey",),
            "A concurrent request with this idempotency key did not finish; retry.",
            UserErrorCode.IDEMPOTENCY_CONFLICT,
        )
    return booking.delivery


def _same_input(first: str | None, later: str | None) -> None:
    if first != later:
        raise idempotency.conflict()


def _write(
    session: Session, tenant_id: str, bookings: list[_Booking], now: datetime, sandbox: bool
) -> None:
    """Everything the new bookings write, one statement per table (`insert_rows`)."""
    if not bookings:
        return
    rows = [booking.row for booking in bookings if booking.row is not None]
    insert_rows(session, _DELIVERY, rows)
    mode = "sandbox" if sandbox else "live"
    on_commit(session, lambda: metrics.BOOKINGS.labels(mode).inc(len(rows)))
    for row in rows:
        logger.info("delivery booked", delivery_id=row["id"], tenant_id=tenant_id, mode=mode)
    insert_rows(
        session,
        _DELIVERY_EVENT,
        [
            {
                "id": new_id("dev"),
                "tenant_id": tenant_id,
                "sandbox": sandbox,
                "delivery_id": row["id"],
                "status": DeliveryStatus.BOOKED,
                "at": now,
            }
            for row in rows
        ],
    )
    for booking in bookings:
        if booking.quote is not None and booking.delivery is not None:
            booking.quote.delivery_id = booking.delivery.id
            session.add(booking.quote)
    if not sandbox:
        record_usage(
            session,
            [
                event
                for booking in bookings
                if booking.row is not None and booking.area is not None
                for event in _booking_usage(booking.row, booking.area, booking.quote)
            ],
        )
    owner = Merchant(tenant_id, sandbox)
    emit_all(
        session,
        [
            (
                "delivery.booked",
                {"delivery_id": row["id"], "reference": row["reference"], "status": "BOOKED"},
                owner,
            )
            for row in rows
        ],
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
    sandbox: bool,
) -> Quote:
    """The quote a booking may use, locked; UserErrors when it does not fit the booking
    (another mode's quote is as absent as a missing one)."""
    quote = session.exec(
        select(Quote)
        .where(Quote.id == quote_id, Quote.tenant_id == tenant_id, Quote.sandbox == sandbox)
        .with_for_update()
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
    if window is not None and window not in quote.offered_windows():
        raise UserErrors.one(
            ("timeWindow",), "Choose one of the quote's time windows.", UserErrorCode.QUOTE_MISMATCH
        )
    return quote


def _booking_usage(row: dict[str, Any], area: ServiceArea, quote: Quote | None) -> list[Usage]:
    """Metered as the plan prices bookings, or at exactly the quoted price (`row`: the
    new delivery's)."""
    return booking_usage(
        row["id"],
        row["tenant_id"],
        row["created_at"],
        area.code,
        row["weight_grams"],
        row["recipient_phone"] or row["recipient_email"] or row["recipient_name"],
        from_minor(quote.price_minor, currency_for(quote.currency)) if quote else None,
    )


def _validate(
    session: Session, request: BookingRequest, now: datetime
) -> tuple[ServiceArea, date, tuple[datetime, datetime]]:
    """Check everything, collecting every problem, so one round trip shows them all."""
    problems = Problems()
    check_reference(request.reference, problems)
    check_contact(request.recipient, problems)
    area = check_place(session, request.service_area, request.dropoff, request.parcel, problems)
    if area is None:
        raise UserErrors(problems.errors)
    day, window = check_schedule(area, request.date, request.time_window, now, problems)
    problems.raise_any()
    return area, day, window
