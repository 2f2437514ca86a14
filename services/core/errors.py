"""User errors: what a client did wrong, with a stable code (Shopify's userErrors)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UserErrorCode(StrEnum):
    """Stable codes clients can branch on. Documented in the schema."""

    REQUIRED = "REQUIRED"
    INVALID = "INVALID"
    TOO_LONG = "TOO_LONG"
    SERVICE_AREA_NOT_FOUND = "SERVICE_AREA_NOT_FOUND"
    OUTSIDE_SERVICE_AREA = "OUTSIDE_SERVICE_AREA"
    DATE_NOT_BOOKABLE = "DATE_NOT_BOOKABLE"
    INVALID_TIME_WINDOW = "INVALID_TIME_WINDOW"
    TIME_WINDOW_OUTSIDE_SERVICE_HOURS = "TIME_WINDOW_OUTSIDE_SERVICE_HOURS"
    PARCEL_TOO_HEAVY = "PARCEL_TOO_HEAVY"
    PARCEL_TOO_LARGE = "PARCEL_TOO_LARGE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    TOO_MANY_INPUTS = "TOO_MANY_INPUTS"
    NOT_FOUND = "NOT_FOUND"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    QUOTE_MISMATCH = "QUOTE_MISMATCH"
    NOT_SANDBOX = "NOT_SANDBOX"
    INVALID_URL = "INVALID_URL"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    WEBHOOK_ENDPOINT_DISABLED = "WEBHOOK_ENDPOINT_DISABLED"


@dataclass(frozen=True)
class UserError:
    field: tuple[str, ...]
    message: str
    code: UserErrorCode


class UserErrors(Exception):
    """Raised by services when input is rejected; the API turns it into `userErrors`."""

    def __init__(self, errors: list[UserError]):
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field: tuple[str, ...], message: str, code: UserErrorCode) -> UserErrors:
        return cls([UserError(field, message, code)])
