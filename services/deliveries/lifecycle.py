"""The life of a delivery after booking: changes by the merchant, execution by drivers.

    BOOKED ──plan──► PLANNED ──van leaves──► OUT_FOR_DELIVERY ──► DELIVERED
      │                 │                          │
      └──── cancel ─────┴──► CANCELLED             └──► FAILED ──► BOOKED (re-attempt, next day)
                                                               └──► RETURNED (after MAX_ATTEMPTS)

This module is the one place a delivery's status changes, the planner's BOOKED to
PLANNED included (`plan`): every change writes the delivery, a tracking event, the
usage it is billed by and an outbox event, all in the caller's transaction. A change
that is not allowed from the current status is a userError (INVALID_TRANSITION) and
writes nothing. Changes asked for through the API go through `change`, which finds the
delivery for the caller and honours the request's idempotency key.

Usage follows the table in services/core/meters.py: PLANNED records the delivery's
share of its route's km; DELIVERED, FAILED (per attempt) and CANCELLED each record their
event. Charge policy per status: the booking itself is billed when booked; a
cancellation while BOOKED costs nothing more, while one once PLANNED (a van's route
already counts on it) also records `late_cancellations`, which plans price.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select, update

from services.core import areas, idempotency, logs
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.meters import (
    Usage,
    cancelled_usage,
    delivered_usage,
    failed_attempt_usage,
    late_cancellation_usage,
    route_km_usage,
)
from services.core.models import (
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Route,
    ServiceArea,
    Stop,
)
from services.core.outbox import emit, emit_all
from services.core.principal import Merchant
from services.core.usage import record_usage
from services.deliveries import repository, validation

MAX_ATTEMPTS = 3

S = DeliveryStatus
logger = logs.get_logger(__name__)
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


@dataclass(frozen=True)
class Actor:
    """Who asks for a change through the API.

    A merchant acts on its tenant's deliveries of its own mode (live or sandbox); the
    operator (`merchant` None) on every delivery. Idempotency keys belong to `principal`,
    in the merchant's mode.
    """

    principal: str
    merchant: Merchant | None


Change = Callable[[Session, Delivery, datetime], Delivery]


def change(
    session: Session,
    actor: Actor,
    delivery_id: str,
    now: datetime,
    action: Change,
    *,
    operation: str,
    idempotency_key: str | None,
    request: Any,
) -> Delivery:
    """Apply `action` to the actor's delivery, once per idempotency key.

    Runs in a savepoint: a rejected change (UserErrors) writes nothing and releases
    the key. The key is claimed first; a retry with the same key and `request` gets
    the delivery as the first request left it, other input IDEMPOTENCY_CONFLICT.
    """
    with session.begin_nested():
        if idempotency_key is not None:
            digest = idempotency.fingerprint(operation, request)
            sandbox = actor.merchant is not None and actor.merchant.sandbox
            earlier = idempotency.replay(
                session, actor.principal, idempotency_key, operation, digest, sandbox=sandbox
            ) or idempotency.claim(
                session,
                actor.principal,
                idempotency_key,
                operation,
                digest,
                {"delivery_id": delivery_id},
                sandbox=sandbox,
            )
            if earlier is not None:
                replayed = repository.get(session, actor.merchant, earlier["delivery_id"])
                if replayed is None:
                    raise not_found(earlier["delivery_id"])
                return replayed
        delivery = repository.lock(session, actor.merchant, delivery_id)
        if delivery is None:
            raise not_found(delivery_id)
        return action(session, delivery, now)


def require_sandbox(actor: Actor) -> None:
    """Simulation is for test-mode credentials only."""
    if actor.merchant is None or not actor.merchant.sandbox:
        raise UserErrors.one(
            ("id",),
            "Simulation needs sandbox (test-mode) credentials.",
            UserErrorCode.NOT_SANDBOX,
        )


def not_found(delivery_id: str) -> UserErrors:
    """What a missing delivery and another tenant's delivery both look like."""
    return UserErrors.one(("id",), f"No delivery {delivery_id!r}.", UserErrorCode.NOT_FOUND)


def cancel(session: Session, delivery: Delivery, now: datetime, reason: str | None) -> Delivery:
    validation.check_lengths({("reason",): reason})
    was = _require(delivery, S.CANCELLED)
    leave_route(session, delivery)
    if was == S.PLANNED and not delivery.sandbox:
        area = session.get(ServiceArea, delivery.area_id)
        late = late_cancellation_usage(
            delivery.id, delivery.tenant_id, now, area.code if area else None
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
    new_day, (start, end) = validation.validate_schedule(area, day, window, now)
    leave_route(session, delivery)
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
    session: Session, delivery: Delivery, now: datetime, recipient: validation.Recipient
) -> Delivery:
    if delivery.status not in CONTACT_CHANGEABLE:
        raise _invalid(delivery, "changed")
    validation.validate_recipient(recipient)
    delivery.recipient_name = recipient.name
    delivery.recipient_phone = recipient.phone
    delivery.recipient_email = recipient.email
    delivery.updated_at = now
    session.add(delivery)
    emit(session, "delivery.updated", _payload(delivery), _owner(delivery))
    return delivery


def start(session: Session, delivery: Delivery, now: datetime, at: Location | None) -> Delivery:
    _require(delivery, S.OUT_FOR_DELIVERY)
    return _move(session, delivery, S.OUT_FOR_DELIVERY, now, location=at)


def deliver(
    session: Session, delivery: Delivery, now: datetime, proof: Proof, at: Location | None
) -> Delivery:
    _require(delivery, S.DELIVERED)
    validation.check_lengths(
        {
            ("proof", "signatureName"): proof.signature_name,
            ("proof", "photoReference"): proof.photo_reference,
            ("proof", "pin"): proof.pin,
        }
    )
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
    validation.check_lengths({("note",): note})
    _move(session, delivery, S.FAILED, now, location=at, reason=reason, detail=note)
    if delivery.attempt >= MAX_ATTEMPTS:
        return delivery  # goes back to the depot: RETURNED when it arrives
    delivery.attempt += 1
    delivery.date = delivery.date + timedelta(days=1)
    area = session.get(ServiceArea, delivery.area_id)
    assert area is not None
    opens, closes = areas.delivery_day(area, delivery.date)
    delivery.window_start, delivery.window_end = opens, closes
    leave_route(session, delivery)
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


def plan(
    session: Session,
    delivery: Delivery,
    route: Route,
    number: int,
    eta: datetime,
    km_share: Decimal,
    area_code: str,
    now: datetime,
) -> None:
    """BOOKED to PLANNED: stop `number` of `route` at `eta`, metered its share of the
    route's distance (`route_km`, to the metre). The planner calls it for each stop it
    inserts into a route; a new route's stops go through `plan_stops` at once."""
    plan_stops(session, route, [(delivery, number, eta, km_share)], area_code, now)


def plan_stops(
    session: Session,
    route: Route,
    stops: Sequence[tuple[Delivery, int, datetime, Decimal]],
    area_code: str,
    now: datetime,
) -> None:
    """`plan` for several stops of one route: (delivery, stop number, ETA, km share)
    each, with their usage recorded in one go (a plan run writes thousands)."""
    usage = []
    events: list[tuple[str, dict[str, Any], Merchant | None]] = []
    request_ids: list[str | None] = []
    for delivery, number, eta, km_share in stops:
        session.add(
            Stop(
                route_id=route.id,
                delivery_id=delivery.id,
                tenant_id=delivery.tenant_id,
                sequence=number,
                eta=eta,
            )
        )
        delivery.status = S.PLANNED
        delivery.route_id = route.id
        delivery.stop_number = number
        delivery.eta = eta
        delivery.unplanned_reason = None
        delivery.updated_at = now
        session.add(_event(delivery, S.PLANNED, now, detail=f"route {route.id}"))
        if not delivery.sandbox:
            km = km_share.quantize(Decimal("0.001"))
            usage.append(route_km_usage(delivery.id, delivery.tenant_id, km, now, area_code))
        # No stop number: it counts other merchants' stops (GraphQL gives the merchant
        # its own order, `route { stopNumber }`).
        planned = {"delivery_id": delivery.id, "route_id": route.id, "eta": eta.isoformat()}
        events.append(("delivery.planned", planned, _owner(delivery)))
        request_ids.append(delivery.request_id)  # the booking's, on what follows it
        with logs.bound(request_id=delivery.request_id):
            logger.info("delivery planned", delivery_id=delivery.id, route_id=route.id, stop=number)
    emit_all(session, events, request_ids)
    if usage:
        record_usage(session, usage)


def move_stop(
    session: Session, delivery: Delivery, stop: Stop, number: int, eta: datetime, now: datetime
) -> None:
    """A planned delivery's stop gets another number or arrival time (a late booking
    joined its route); its merchant hears of a changed ETA (`delivery.eta_updated`)."""
    stop.sequence = number
    delivery.stop_number = number
    if eta == stop.eta:
        return
    previous = stop.eta
    stop.eta = delivery.eta = eta
    delivery.updated_at = now
    emit(
        session,
        "delivery.eta_updated",
        {
            "delivery_id": delivery.id,
            "route_id": stop.route_id,
            "eta": eta.isoformat(),
            "previous_eta": previous.isoformat(),
        },
        _owner(delivery),
    )


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


def leave_route(session: Session, delivery: Delivery) -> None:
    """Take a planned delivery off its route (the van's other stops keep their numbers).

    The route is counted down before the stop goes: a merchant's transaction sees (and
    may change) a route only while one of its stops rides it.
    """
    if delivery.route_id is None:
        return
    session.execute(
        update(Route)
        .where(col(Route.id) == delivery.route_id)
        .values(stop_count=col(Route.stop_count) - 1)
    )
    stop = session.exec(
        select(Stop).where(Stop.delivery_id == delivery.id, Stop.route_id == delivery.route_id)
    ).first()
    if stop is not None:
        session.delete(stop)
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
        record_usage(session, status_usage(delivery, status, now))
    session.add(
        _event(delivery, status, now, detail=detail, reason=reason, location=location, proof=proof)
    )
    emit(
        session,
        topic or f"delivery.{status.lower()}",
        {**_payload(delivery), **({"reason": reason} if reason else {})},
        _owner(delivery),
    )
    return delivery


def status_usage(delivery: Delivery, status: DeliveryStatus, now: datetime) -> list[Usage]:
    """The usage a move to `status` records (none for most statuses); a FAILED attempt
    is numbered by the delivery's current attempt."""
    if status == S.DELIVERED:
        return [delivered_usage(delivery.id, delivery.tenant_id, now)]
    if status == S.FAILED:
        return [failed_attempt_usage(delivery.id, delivery.tenant_id, delivery.attempt, now)]
    if status == S.CANCELLED:
        return [cancelled_usage(delivery.id, delivery.tenant_id, now)]
    return []


def _event(
    delivery: Delivery,
    status: DeliveryStatus,
    now: datetime,
    *,
    detail: str | None = None,
    reason: str | None = None,
    location: Location | None = None,
    proof: dict[str, Any] | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        tenant_id=delivery.tenant_id,
        sandbox=delivery.sandbox,
        delivery_id=delivery.id,
        status=status,
        at=now,
        detail=detail,
        reason=reason,
        lat=location.lat if location else None,
        lng=location.lng if location else None,
        proof=proof,
    )


def _owner(delivery: Delivery) -> Merchant:
    """Whose events a delivery's are: its merchant's, in its mode."""
    return Merchant(delivery.tenant_id, delivery.sandbox)


def _payload(delivery: Delivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id,
        "reference": delivery.reference,
        "status": delivery.status,
        "attempt": delivery.attempt,
        "eta": delivery.eta.isoformat() if delivery.eta else None,
    }
