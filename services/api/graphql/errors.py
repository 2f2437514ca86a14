"""The `UserError` type every mutation payload carries."""

from __future__ import annotations

import strawberry

from services.api.graphql.enums import describe_values
from services.core import idempotency
from services.core.errors import UserError as DomainUserError
from services.core.errors import UserErrorCode as DomainUserErrorCode
from services.deliveries import validation
from services.webhooks import service as webhooks

UserErrorCode = describe_values(
    strawberry.enum(
        DomainUserErrorCode,
        name="UserErrorCode",
        description="Why an input was rejected. Stable: clients may branch on these values.",
    ),
    {
        "REQUIRED": "A required value is missing or blank (e.g. the reference, the "
        "recipient's name, a proof of delivery, a webhook URL or its event types).",
        "INVALID": "A value is malformed or out of range (e.g. coordinates, a non-positive "
        "weight or side, an e-mail address, a phone number, an idempotency key that is not "
        f"1 to {idempotency.MAX_KEY_LENGTH} characters).",
        "TOO_LONG": "A text is longer than allowed (a reference: 128 characters; a "
        "recipient's name or an address line: 200; a webhook URL: "
        f"{webhooks.MAX_URL_LENGTH}; each input field says its cap).",
        "SERVICE_AREA_NOT_FOUND": "No service area has this code.",
        "OUTSIDE_SERVICE_AREA": "The drop-off lies outside the service area's bounds.",
        "DATE_NOT_BOOKABLE": "The delivery day is not between today and "
        f"{validation.BOOKING_HORIZON_DAYS} days ahead, "
        "in the area's time zone.",
        "INVALID_TIME_WINDOW": "The time window has no UTC offset, lasts less than 30 "
        "minutes, or is already over.",
        "TIME_WINDOW_OUTSIDE_SERVICE_HOURS": "The time window does not lie within the "
        "area's delivery hours on that day.",
        "PARCEL_TOO_HEAVY": f"The parcel weighs more than {validation.MAX_WEIGHT_GRAMS:,} grams.",
        "PARCEL_TOO_LARGE": f"A side of the parcel is longer than {validation.MAX_SIDE_CM} cm.",
        "IDEMPOTENCY_CONFLICT": "The idempotency key was already used with different "
        "input or for another mutation.",
        "TOO_MANY_INPUTS": "More inputs than one call accepts (bookDeliveries: 250).",
        "NOT_FOUND": "No such object among yours (a delivery, quote, webhook endpoint or "
        "message); another merchant's looks exactly the same.",
        "INVALID_TRANSITION": "The change is not allowed from the delivery's current status.",
        "QUOTE_EXPIRED": "The quote has expired or was already used for a booking.",
        "QUOTE_MISMATCH": "The booking's area, day, drop-off or weight differs from the "
        "quote's, or its time window is not one the quote offered.",
        "NOT_SANDBOX": "The mutation needs sandbox (test-mode) credentials.",
        "INVALID_URL": "The webhook URL is not an absolute https:// URL without credentials "
        "(plain http only for localhost, 127.0.0.1 and [::1]).",
        "UNKNOWN_EVENT_TYPE": "An event type that `webhookEventTypes` does not list.",
        "WEBHOOK_ENDPOINT_DISABLED": "The message's webhook endpoint is disabled or "
        "deleted: enable it before replaying.",
    },
)


@strawberry.type(description="A problem with the input, pointing at the field it concerns.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field, e.g. ["parcel", "weightGrams"] or '
        '["inputs", "3", "dropoff"] (camelCase names, list indexes as strings); null is '
        "reserved for problems that concern no field."
    )
    message: str = strawberry.field(
        description="What is wrong, in English, for people; it may change: branch on `code`."
    )
    code: UserErrorCode = strawberry.field(  # type: ignore[valid-type]
        description="Why, as a stable value."
    )

    @classmethod
    def from_domain(cls, error: DomainUserError, prefix: tuple[str, ...] = ()) -> UserError:
        return cls(field=[*prefix, *error.field], message=error.message, code=error.code)
