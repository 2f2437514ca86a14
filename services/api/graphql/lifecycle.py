"""GraphQL for a delivery's life after booking.

Merchants (deliveries:write) cancel, reschedule and correct the recipient; the operator
(drivers' and depots' systems, scope `operator`) reports execution; sandbox credentials
simulate execution to test integrations. Every mutation takes an optional idempotency key.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated, Any

import strawberry

from services.api.graphql.context import Context, context_of
from services.api.graphql.deliveries import Delivery, RecipientInput, TimeWindowInput
from services.api.graphql.enums import describe_values
from services.api.graphql.errors import UserError
from services.api.graphql.permissions import Operator, WriteDeliveries
from services.core import idempotency
from services.core.errors import UserErrors
from services.deliveries import lifecycle, validation

FailureReason = describe_values(
    strawberry.enum(
        lifecycle.FailureReason,
        description="Why an attempt failed, normalised across carriers. Stable: clients may "
        "branch on these values.",
    ),
    {
        "RECIPIENT_ABSENT": "Nobody was there to take the parcel.",
        "ADDRESS_NOT_FOUND": "The driver could not find the drop-off address.",
        "ACCESS_DENIED": "The driver could not get to the door (gate, building, reception).",
        "REFUSED": "The recipient refused the parcel.",
        "DAMAGED": "The parcel was damaged and not handed over.",
        "UNSAFE_LOCATION": "The driver judged the drop-off unsafe.",
        "OTHER": "Any other reason; the event's `detail` carries the driver's note, if any.",
    },
)

_ID = "The delivery's id."
_KEY = (
    f"Optional idempotency key, 1 to {idempotency.MAX_KEY_LENGTH} characters, kept "
    f"{idempotency.RETENTION.days} days: a retry with the same key "
    "and input returns the first result; other input is IDEMPOTENCY_CONFLICT."
)
_LOCATION = "Where the driver was, if the device knows; shown on the tracking event."


@strawberry.enum(description="How a simulated sandbox delivery ends.")
class SimulatedOutcome(Enum):
    DELIVERED = strawberry.enum_value(
        "DELIVERED", description="Handed over: the delivery ends DELIVERED."
    )
    FAILED = strawberry.enum_value(
        "FAILED",
        description="The attempt fails with `failureReason`: the delivery is re-attempted "
        "(BOOKED again), or stays FAILED after its last attempt.",
    )


@strawberry.input(description="A point on Earth (WGS 84), reported by a driver's device.")
class LocationInput:
    lat: float = strawberry.field(description="Latitude in decimal degrees.")
    lng: float = strawberry.field(description="Longitude in decimal degrees.")


@strawberry.input(description="What shows the parcel reached the recipient (at least one).")
class ProofInput:
    signature_name: str | None = strawberry.field(
        default=None, description="The name of the person who signed for it."
    )
    photo_reference: str | None = strawberry.field(
        default=None, description="The driver's system's reference to a photo of the drop-off."
    )
    pin: str | None = strawberry.field(
        default=None, description="The PIN the recipient gave the driver."
    )


@strawberry.input(description="Cancel one delivery.")
class CancelDeliveryInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    reason: str | None = strawberry.field(
        default=None,
        description="Why, in your words, at most "
        f"{validation.MAX_TEXT[('reason',)]} characters; shown as the CANCELLED event's "
        "`reason`.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Move a delivery to another day or time window.")
class RescheduleDeliveryInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    date: date | None = strawberry.field(
        default=None,
        description=f"New day, today to {validation.BOOKING_HORIZON_DAYS} days ahead in the "
        "area's time zone; default: the "
        "day of `timeWindow` if given, else the next day.",
    )
    time_window: TimeWindowInput | None = strawberry.field(
        default=None, description="New window; absent: the whole delivery day."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Correct the recipient of one delivery.")
class UpdateDeliveryRecipientInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    recipient: RecipientInput = strawberry.field(
        description="The whole recipient: fields left out are cleared."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Operator: the van has left the depot with this parcel.")
class StartDeliveryInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    location: LocationInput | None = strawberry.field(default=None, description=_LOCATION)
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Operator: the parcel was handed over.")
class CompleteDeliveryInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    proof: ProofInput = strawberry.field(description="Proof of delivery; at least one field.")
    location: LocationInput | None = strawberry.field(default=None, description=_LOCATION)
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Operator: an attempt to hand the parcel over failed.")
class FailDeliveryAttemptInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    reason: FailureReason = strawberry.field(  # type: ignore[valid-type]
        description="Why it failed; shown as the FAILED event's `reason`."
    )
    note: str | None = strawberry.field(
        default=None,
        description=f"The driver's note, at most {validation.MAX_TEXT[('note',)]} characters; "
        "shown as the FAILED event's `detail`.",
    )
    location: LocationInput | None = strawberry.field(default=None, description=_LOCATION)
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Operator: a parcel whose last attempt failed is back at the depot.")
class ReturnDeliveryInput:
    id: strawberry.ID = strawberry.field(description=_ID)
    location: LocationInput | None = strawberry.field(default=None, description=_LOCATION)
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input(description="Sandbox: play a test delivery to an outcome.")
class SimulateDeliveryInput:
    id: strawberry.ID = strawberry.field(description="The sandbox delivery's id.")
    outcome: SimulatedOutcome = strawberry.field(description="How the attempt ends.")
    failure_reason: FailureReason | None = strawberry.field(  # type: ignore[valid-type]
        default=None,
        description="For outcome FAILED: why; default RECIPIENT_ABSENT. Ignored otherwise.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.type(description="The result of a change to one delivery.")
class DeliveryPayload:
    delivery: Delivery | None = strawberry.field(
        description="The delivery after the change; null when it was rejected."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Why the change was rejected (nothing was changed); empty on success."
    )


def _apply(
    info: strawberry.Info,
    operation: str,
    input: Any,
    action: lifecycle.Change,
    *,
    as_operator: bool = False,
) -> DeliveryPayload:
    """Change one delivery for the caller, under the input's idempotency key."""
    ctx: Context = context_of(info)
    try:
        row = lifecycle.change(
            ctx.session,
            _actor(ctx, as_operator),
            str(input.id),
            ctx.now,
            action,
            operation=operation,
            idempotency_key=input.idempotency_key,
            request=strawberry.asdict(input),
        )
    except UserErrors as rejected:
        return _rejected(rejected)
    return DeliveryPayload(delivery=Delivery.from_row(row), user_errors=[])


def _actor(ctx: Context, as_operator: bool) -> lifecycle.Actor:
    """The operator acts on every delivery; a merchant on its own, in its token's mode."""
    if as_operator:
        return lifecycle.Actor(principal=f"client:{ctx.token.client_id}", merchant=None)
    return lifecycle.Actor(principal=ctx.tenant_id, merchant=ctx.merchant)


def _rejected(rejected: UserErrors) -> DeliveryPayload:
    return DeliveryPayload(
        delivery=None, user_errors=[UserError.from_domain(e) for e in rejected.errors]
    )


def _location(value: LocationInput | None) -> lifecycle.Location | None:
    return lifecycle.Location(lat=value.lat, lng=value.lng) if value else None


@strawberry.type
class LifecycleMutations:
    @strawberry.mutation(
        permission_classes=[WriteDeliveries],
        description="Cancel a delivery while BOOKED or PLANNED (until its van leaves). It "
        "records a `cancellations` usage event, and once PLANNED also a `late_cancellations` "
        "one; your plan says what each costs.",
    )
    def cancel_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[CancelDeliveryInput, strawberry.argument(description="What to cancel.")],
    ) -> DeliveryPayload:
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
        self,
        info: strawberry.Info,
        input: Annotated[
            RescheduleDeliveryInput, strawberry.argument(description="What to move, and where to.")
        ],
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
        self,
        info: strawberry.Info,
        input: Annotated[
            UpdateDeliveryRecipientInput,
            strawberry.argument(description="The delivery and its corrected recipient."),
        ],
    ) -> DeliveryPayload:
        recipient = validation.Recipient(
            name=input.recipient.name, phone=input.recipient.phone, email=input.recipient.email
        )
        return _apply(
            info,
            "updateDeliveryRecipient",
            input,
            lambda session, row, now: lifecycle.update_recipient(session, row, now, recipient),
        )

    @strawberry.mutation(
        permission_classes=[Operator],
        description="Operator only: the van has left with this parcel (PLANNED to "
        "OUT_FOR_DELIVERY).",
    )
    def start_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[
            StartDeliveryInput, strawberry.argument(description="The delivery that left.")
        ],
    ) -> DeliveryPayload:
        return _apply(
            info,
            "startDelivery",
            input,
            lambda session, row, now: lifecycle.start(session, row, now, _location(input.location)),
            as_operator=True,
        )

    @strawberry.mutation(
        permission_classes=[Operator],
        description="Operator only: handed over, with proof (OUT_FOR_DELIVERY to DELIVERED).",
    )
    def complete_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[
            CompleteDeliveryInput,
            strawberry.argument(description="The delivery handed over, and the proof."),
        ],
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
        description="Operator only: an attempt failed (OUT_FOR_DELIVERY to FAILED). The "
        "delivery is re-attempted the next day (BOOKED again), "
        f"up to {lifecycle.MAX_ATTEMPTS} attempts; then it goes back to the depot.",
    )
    def fail_delivery_attempt(
        self,
        info: strawberry.Info,
        input: Annotated[
            FailDeliveryAttemptInput,
            strawberry.argument(description="The delivery and why its attempt failed."),
        ],
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
        permission_classes=[Operator],
        description="Operator only: a parcel whose last attempt failed is back at the depot "
        "(FAILED to RETURNED).",
    )
    def return_delivery(
        self,
        info: strawberry.Info,
        input: Annotated[
            ReturnDeliveryInput, strawberry.argument(description="The delivery back at the depot.")
        ],
    ) -> DeliveryPayload:
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
        self,
        info: strawberry.Info,
        input: Annotated[
            SimulateDeliveryInput,
            strawberry.argument(description="The sandbox delivery and its outcome."),
        ],
    ) -> DeliveryPayload:
        try:
            lifecycle.require_sandbox(_actor(context_of(info), as_operator=False))
        except UserErrors as rejected:
            return _rejected(rejected)
        outcome = lifecycle.DeliveryStatus(input.outcome.name)  # names are the values
        reason = input.failure_reason or lifecycle.FailureReason.RECIPIENT_ABSENT
        return _apply(
            info,
            "simulateDelivery",
            input,
            lambda session, row, now: lifecycle.simulate(session, row, now, outcome, reason),
        )
