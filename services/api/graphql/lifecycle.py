"""GraphQL for a delivery's life after booking.

Merchants (deliveries:write) cancel, reschedule and correct the recipient; the operator
(drivers' and depots' systems, scope `operator`) reports execution; sandbox credentials
simulate execution to test integrations. Every mutation takes an optional idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any

import strawberry
from sqlmodel import Session

from services.api import idempotency
from services.api.deliveries import lifecycle, service
from services.api.deliveries.errors import UserError as DomainUserError
from services.api.deliveries.errors import UserErrorCode as Code
from services.api.deliveries.errors import UserErrors
from services.api.graphql.context import Context, context_of
from services.api.graphql.deliveries import Delivery, RecipientInput, TimeWindowInput
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import Operator, WriteDeliveries
from services.core.models import Delivery as DeliveryRow

FailureReason = strawberry.enum(
    lifecycle.FailureReason, description="Why an attempt failed, normalised across carriers."
)


@strawberry.enum(description="How a simulated sandbox delivery ends.")
class SimulatedOutcome(Enum):
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@strawberry.input
class LocationInput:
    lat: float
    lng: float


@strawberry.input(description="What shows the parcel reached the recipient (at least one).")
class ProofInput:
    signature_name: str | None = None
    photo_reference: str | None = None
    pin: str | None = None


@strawberry.input
class CancelDeliveryInput:
    id: strawberry.ID
    reason: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class RescheduleDeliveryInput:
    id: strawberry.ID
    date: date | None = strawberry.field(
        default=None, description="New day (default: unchanged window's day)."
    )
    time_window: TimeWindowInput | None = None
    idempotency_key: str | None = None


@strawberry.input
class UpdateDeliveryRecipientInput:
    id: strawberry.ID
    recipient: RecipientInput
    idempotency_key: str | None = None


@strawberry.input
class StartDeliveryInput:
    id: strawberry.ID
    location: LocationInput | None = None
    idempotency_key: str | None = None


@strawberry.input
class CompleteDeliveryInput:
    id: strawberry.ID
    proof: ProofInput
    location: LocationInput | None = None
    idempotency_key: str | None = None


@strawberry.input
class FailDeliveryAttemptInput:
    id: strawberry.ID
    reason: FailureReason  # type: ignore[valid-type]
    note: str | None = None
    location: LocationInput | None = None
    idempotency_key: str | None = None


@strawberry.input
class ReturnDeliveryInput:
    id: strawberry.ID
    location: LocationInput | None = None
    idempotency_key: str | None = None


@strawberry.input
class SimulateDeliveryInput:
    id: strawberry.ID
    outcome: SimulatedOutcome
    failure_reason: FailureReason | None = None  # type: ignore[valid-type]
    idempotency_key: str | None = None


@strawberry.type
class DeliveryPayload:
    delivery: Delivery | None
    user_errors: list[UserError]


Change = Callable[[Session, DeliveryRow, datetime], DeliveryRow]


def _apply(
    info: strawberry.Info,
    operation: str,
    input: Any,
    change: Change,
    *,
    as_operator: bool = False,
    sandbox_only: bool = False,
) -> DeliveryPayload:
    """Load, change and answer, inside a savepoint and under the input's idempotency key.

    The key is claimed first, inside the savepoint, so a rejected change releases it.
    """
    ctx: Context = context_of(info)
    principal = f"client:{ctx.token.client_id}" if as_operator else ctx.tenant_id
    key: str | None = input.idempotency_key
    try:
        with ctx.session.begin_nested():
            if key is not None:
                digest = idempotency.fingerprint(operation, strawberry.asdict(input))
                result = {"delivery_id": str(input.id)}
                earlier = idempotency.replay(
                    ctx.session, principal, key, operation, digest
                ) or idempotency.claim(ctx.session, principal, key, operation, digest, result)
                if earlier is not None:
                    return _replayed(ctx.session, earlier["delivery_id"])
            row = lifecycle.load(
                ctx.session,
                str(input.id),
                None if as_operator else ctx.tenant_id,
                sandbox=True if sandbox_only else None,
            )
            if not as_operator and not sandbox_only and row.sandbox != ctx.token.sandbox:
                raise _not_found(str(input.id))
            change(ctx.session, row, ctx.now)
    except UserErrors as rejected:
        return DeliveryPayload(
            delivery=None, user_errors=[UserError.from_domain(e) for e in rejected.errors]
        )
    return DeliveryPayload(delivery=Delivery.from_row(row), user_errors=[])


def _replayed(session: Session, delivery_id: str) -> DeliveryPayload:
    row = session.get(DeliveryRow, delivery_id)
    return DeliveryPayload(delivery=Delivery.from_row(row) if row else None, user_errors=[])


def _not_found(delivery_id: str) -> UserErrors:
    return UserErrors([DomainUserError(("id",), f"No delivery {delivery_id!r}.", Code.NOT_FOUND)])


def _location(value: LocationInput | None) -> lifecycle.Location | None:
    return lifecycle.Location(lat=value.lat, lng=value.lng) if value else None


@strawberry.type
class LifecycleMutations:
    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Cancel a delivery until its van leaves. Free while BOOKED; once PLANNED "
        "it records one `cancellations` usage event.",
    )
    def cancel_delivery(self, info: strawberry.Info, input: CancelDeliveryInput) -> DeliveryPayload:
        return _apply(
            info,
            "cancelDelivery",
            input,
            lambda session, row, now: lifecycle.cancel(session, row, now, input.reason),
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Move a delivery to another day or window until its van leaves; a planned "
        "delivery leaves its route and is planned again.",
    )
    def reschedule_delivery(
        self, info: strawberry.Info, input: RescheduleDeliveryInput
    ) -> DeliveryPayload:
        window = (input.time_window.start, input.time_window.end) if input.time_window else None
        return _apply(
            info,
            "rescheduleDelivery",
            input,
            lambda session, row, now: lifecycle.reschedule(session, row, now, input.date, window),
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Correct the recipient's name or contact until the parcel is handed over.",
    )
    def update_delivery_recipient(
        self, info: strawberry.Info, input: UpdateDeliveryRecipientInput
    ) -> DeliveryPayload:
        recipient = service.Recipient(
            name=input.recipient.name, phone=input.recipient.phone, email=input.recipient.email
        )
        return _apply(
            info,
            "updateDeliveryRecipient",
            input,
            lambda session, row, now: lifecycle.update_recipient(session, row, now, recipient),
        )

    @strawberry.mutation(
        permission_classes=[Operator], description="The van has left with this parcel."
    )
    def start_delivery(self, info: strawberry.Info, input: StartDeliveryInput) -> DeliveryPayload:
        return _apply(
            info,
            "startDelivery",
            input,
            lambda session, row, now: lifecycle.start(session, row, now, _location(input.location)),
            as_operator=True,
        )

    @strawberry.mutation(permission_classes=[Operator], description="Handed over, with proof.")
    def complete_delivery(
        self, info: strawberry.Info, input: CompleteDeliveryInput
    ) -> DeliveryPayload:
        proof = lifecycle.Proof(
            signature_name=input.proof.signature_name,
            photo_reference=input.proof.photo_reference,
            pin=input.proof.pin,
        )
        return _apply(
            info,
            "completeDelivery",
            input,
            lambda session, row, now: lifecycle.deliver(
                session, row, now, proof, _location(input.location)
            ),
            as_operator=True,
        )

    @strawberry.mutation(
        permission_classes=[Operator],
        description=f"An attempt failed. The delivery is re-attempted the next delivery day, "
        f"up to {lifecycle.MAX_ATTEMPTS} attempts; then it goes back to the depot.",
    )
    def fail_delivery_attempt(
        self, info: strawberry.Info, input: FailDeliveryAttemptInput
    ) -> DeliveryPayload:
        return _apply(
            info,
            "failDeliveryAttempt",
            input,
            lambda session, row, now: lifecycle.fail(
                session, row, now, input.reason, _location(input.location), input.note
            ),
            as_operator=True,
        )

    @strawberry.mutation(
        permission_classes=[Operator], description="A failed parcel is back at the depot."
    )
    def return_delivery(self, info: strawberry.Info, input: ReturnDeliveryInput) -> DeliveryPayload:
        return _apply(
            info,
            "returnDelivery",
            input,
            lambda session, row, now: lifecycle.return_to_depot(
                session, row, now, _location(input.location)
            ),
            as_operator=True,
        )

    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Sandbox only: play a test delivery through planning and execution to "
        "the chosen outcome, emitting the same events and webhooks as a real one.",
    )
    def simulate_delivery(
        self, info: strawberry.Info, input: SimulateDeliveryInput
    ) -> DeliveryPayload:
        if not context_of(info).token.sandbox:
            return DeliveryPayload(
                delivery=None,
                user_errors=[
                    UserError(
                        field=["id"],
                        message="Simulation needs sandbox (test-mode) credentials.",
                        code=Code.NOT_SANDBOX,
                    )
                ],
            )
        outcome = lifecycle.DeliveryStatus(input.outcome.value)
        reason = input.failure_reason or lifecycle.FailureReason.RECIPIENT_ABSENT
        return _apply(
            info,
            "simulateDelivery",
            input,
            lambda session, row, now: lifecycle.simulate(session, row, now, outcome, reason),
            sandbox_only=True,
        )
