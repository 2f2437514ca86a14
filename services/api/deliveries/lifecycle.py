"""The life of a delivery after booking: changes by the merchant, execution by drivers.

    BOOKED ──plan──► PLANNED ──van leaves──► OUT_FOR_DELIVERY ──► DELIVERED
      │                 │                          │
      └──── cancel ─────┴──► CANCELLED             └──► FAILED ──► BOOKED (re-attempt, next day)
                                                               └──► RETURNED (after MAX_ATTEMPTS)

Every change locks the delivery row, writes a tracking event, the usage it is billed
by and an outbox event, all in the caller's transaction. A change that is not allowed
from the current status is a userError (INVALID_TRANSITION) and writes nothing.

Usage follows billing's table (services/billing/metering.py): DELIVERED, FAILED (per
attempt) and CANCELLED each record their event. Charge policy per status: the booking
itself is billed when booked; a cancellation while BOOKED costs nothing more, while one
once PLANNED (a van's route already counts on it) also records `late_cancellations`,
which plans price.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from services.api.deliveries import service
from services.api.deliveries.errors import UserError, UserErrorCode, UserErrors
from services.billing.metering import usage_for_status_change
from services.core import areas
from services.core.models import (
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Route,
    ServiceArea,
    Stop,
)
from services.core.outbox import emit
from services.core.usage import Usage, record_usage

MAX_ATTEMPTS = 3

S = DeliveryStatus
# The statuses each target status may be reached from.
ALLOWED_FROM: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    S.CANCELLED: frozenset({S.BOOKED, S.PLANNED}),
    S.OUT_FOR_DELIVERY: frozenset({S.PLANNED}),
    S.DELIVERED: frozenset({S.OUT_FOR_DELIVERY}),
    S.FAILED: frozenset({S.OUT_FOR_DELIVERY}),
    S.RETURNED: frozenset({S.FAILED}),
}
CHANGEABLE = frozenset({S.BOOKED, S.PLANNED})  # rescheduling: until the van leaves
CONTACT_CHANGEABLE = frozenset({S.BOOKED, S.PLANNED, S.OUT_FOR_DELIVERY})


class FailureReason(StrEnum):
    RECIPIENT_ABSENT = "RECIPIENT_ABSENT"
    ADDRESS_NOT_FOUND = "ADDRESS_NOT_FOUND"
    ACCESS_DENIED = "ACCESS_DENIED"
    REFUSED = "REFUSED"
    DAMAGED = "DAMAGED"
    UNSAFE_LOCATION = "UNSAFE_LOCATION"
    OTHER = "OTHER"


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float


@dataclass(frozen=True)
class Proof:
    signature_name: str | None = None
    photo_reference: str | None = None
    pin: str | None = None


def load(
    session: Session, delivery_id: str, tenant_id: str | None, sandbox: bool | None = None
) -> Delivery:
    """Lock and return a delivery; another tenant's delivery is NOT_FOUND, like a missing one.

    `tenant_id` None is the operator, who acts on any tenant's deliveries.
    """
    statement = select(Delivery).where(Delivery.id == delivery_id).with_for_update()
    if tenant_id is not None:
        statement = statement.where(Delivery.tenant_id == tenant_id)
    if sandbox is not None:
        statement = statement.where(Delivery.sandbox == sandbox)
    delivery = session.exec(statement).first()
    if delivery is None:
        raise not_found(delivery_id)
    return delivery


def not_found(delivery_id: str) -> UserErrors:
    """What a missing delivery and another tenant's delivery both look like."""
    return UserErrors.one(("id",), f"No delivery {delivery_id!r}.", UserErrorCode.NOT_FOUND)


def cancel(session: Session, delivery: Delivery, now: datetime, reason: str | None) -> Delivery:
    was = _require(delivery, S.CANCELLED)
    _leave_route(session, delivery)
    if was == S.PLANNED and not delivery.sandbox:
        area = session.get(ServiceArea, delivery.area_id)
        late = Usage(
            id=f"{delivery.id}:cancelled_late",
            tenant_id=delivery.tenant_id,
            meter="late_cancellations",
            quantity=Decimal(1),
            at=now,
            area_code=area.code if area else None,
        )
        record_usage(session, [late])
    return _move(session, delivery, S.CANCELLED, now, reason=reason, detail=f"from {was}")


def reschedule(
    session: Session,
    delivery: Delivery,
    now: datetime,
    day: date | None,
    window: tuple[datetime, datetime] | None,
) -> Delivery:
    """Move to another day or window; a planned delivery leaves its route to be planned again."""
    if delivery.status not in CHANGEABLE:
        raise _invalid(delivery, "rescheduled")
    area = session.get(ServiceArea, delivery.area_id)
    assert area is not None
    request = service.BookingRequest(
        reference=delivery.reference,
        service_area=area.code,
        dropoff=service.Dropoff(lat=delivery.dropoff_lat, lng=delivery.dropoff_lng),
        recipient=service.Recipient(name=delivery.recipient_name),
        parcel=service.Parcel(weight_grams=delivery.weight_grams),
        date=day,
        time_window=window,
    )
    new_day, (start, end) = service.validate_schedule(area, request, now)
    _leave_route(session, delivery)
    delivery.date = new_day
    delivery.window_start, delivery.window_end = start, end
    delivery.unplanned_reason = None
    return _move(
        session,
        delivery,
        S.BOOKED,
        now,
        detail=f"rescheduled to {new_day} {start.isoformat()}/{end.isoformat()}",
        topic="delivery.rescheduled",
    )


def update_recipient(
    session: Session, delivery: Delivery, now: datetime, recipient: service.Recipient
) -> Delivery:
    if delivery.status not in CONTACT_CHANGEABLE:
        raise _invalid(delivery, "changed")
    service.validate_recipient(recipient)
    delivery.recipient_name = recipient.name
    delivery.recipient_phone = recipient.phone
    delivery.recipient_email = recipient.email
    delivery.updated_at = now
    session.add(delivery)
    emit(session, "delivery.updated", _payload(delivery), delivery.tenant_id)
    return delivery


def start(session: Session, delivery: Delivery, now: datetime, at: Location | None) -> Delivery:
    _require(delivery, S.OUT_FOR_DELIVERY)
    return _move(session, delivery, S.OUT_FOR_DELIVERY, now, location=at)


def deliver(
    session: Session, delivery: Delivery, now: datetime, proof: Proof, at: Location | None
) -> Delivery:
    _require(delivery, S.DELIVERED)
    if not any(asdict(proof).values()):
        raise UserErrors(
            [
                UserError(
                    ("proof",),
                    "A delivery needs proof: a signature name, a photo reference or a PIN.",
                    UserErrorCode.REQUIRED,
                )
            ]
        )
    return _move(session, delivery, S.DELIVERED, now, location=at, proof=asdict(proof))


def fail(
    session: Session,
    delivery: Delivery,
    now: datetime,
    reason: FailureReason,
    at: Location | None,
    note: str | None,
) -> Delivery:
    """Record a failed attempt; re-attempt the next delivery day unless attempts are used up."""
    _require(delivery, S.FAILED)
    _move(session, delivery, S.FAILED, now, location=at, reason=reason, detail=note)
    if delivery.attempt >= MAX_ATTEMPTS:
        return delivery  # goes back to the depot: RETURNED when it arrives
    delivery.attempt += 1
    delivery.date = delivery.date + timedelta(days=1)
    area = session.get(ServiceArea, delivery.area_id)
    assert area is not None
    opens, closes = areas.delivery_day(area, delivery.date)
    delivery.window_start, delivery.window_end = opens, closes
    _leave_route(session, delivery)
    return _move(
        session,
        delivery,
        S.BOOKED,
        now,
        detail=f"attempt {delivery.attempt} on {delivery.date}",
        topic="delivery.reattempt_scheduled",
    )


def return_to_depot(
    session: Session, delivery: Delivery, now: datetime, at: Location | None
) -> Delivery:
    _require(delivery, S.RETURNED)
    return _move(session, delivery, S.RETURNED, now, location=at)


def simulate(
    session: Session,
    delivery: Delivery,
    now: datetime,
    outcome: DeliveryStatus,
    reason: FailureReason,
) -> Delivery:
    """Sandbox: play the delivery through planning and the van's run to `outcome`."""
    if delivery.status == S.BOOKED:
        delivery.eta = delivery.window_start + (delivery.window_end - delivery.window_start) / 2
        _move(session, delivery, S.PLANNED, now, detail="simulated plan")
    if delivery.status == S.PLANNED:
        start(session, delivery, now, None)
    if outcome == S.DELIVERED:
        return deliver(session, delivery, now, Proof(signature_name="Sandbox Recipient"), None)
    return fail(session, delivery, now, reason, None, "simulated failure")


def _require(delivery: Delivery, target: DeliveryStatus) -> DeliveryStatus:
    if delivery.status not in ALLOWED_FROM[target]:
        raise _invalid(delivery, f"moved to {target}")
    return delivery.status


def _invalid(delivery: Delivery, action: str) -> UserErrors:
    return UserErrors(
        [
            UserError(
                ("id",),
                f"A {delivery.status} delivery cannot be {action}.",
                UserErrorCode.INVALID_TRANSITION,
            )
        ]
    )


def _leave_route(session: Session, delivery: Delivery) -> None:
    """Take a planned delivery off its route (the van's other stops keep their numbers)."""
    if delivery.route_id is None:
        return
    stop = session.exec(
        select(Stop).where(Stop.delivery_id == delivery.id, Stop.route_id == delivery.route_id)
    ).first()
    if stop is not None:
        session.delete(stop)
    route = session.get(Route, delivery.route_id, with_for_update=True)
    if route is not None:
        route.stop_count -= 1
    delivery.route_id = None
    delivery.stop_number = None
    delivery.eta = None


def _move(
    session: Session,
    delivery: Delivery,
    status: DeliveryStatus,
    now: datetime,
    *,
    location: Location | None = None,
    reason: str | None = None,
    detail: str | None = None,
    proof: dict[str, Any] | None = None,
    topic: str | None = None,
) -> Delivery:
    delivery.status = status
    delivery.updated_at = now
    session.add(delivery)
    if not delivery.sandbox:
        record_usage(session, usage_for_status_change(delivery, status, now, delivery.attempt))
    session.add(
        DeliveryEvent(
            tenant_id=delivery.tenant_id,
            delivery_id=delivery.id,
            status=status,
            at=now,
            detail=detail,
            reason=reason,
            lat=location.lat if location else None,
            lng=location.lng if location else None,
            proof=proof,
        )
    )
    emit(
        session,
        topic or f"delivery.{status.lower()}",
        {**_payload(delivery), **({"reason": reason} if reason else {})},
        delivery.tenant_id,
    )
    return delivery


def _payload(delivery: Delivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id,
        "reference": delivery.reference,
        "status": delivery.status,
        "attempt": delivery.attempt,
        "eta": delivery.eta.isoformat() if delivery.eta else None,
    }
