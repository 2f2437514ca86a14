"""The `UserError` type every mutation payload carries."""

from __future__ import annotations

import strawberry

from services.api.deliveries.errors import UserError as DomainUserError
from services.api.deliveries.errors import UserErrorCode as DomainUserErrorCode

UserErrorCode = strawberry.enum(
    DomainUserErrorCode,
    name="UserErrorCode",
    description="Why an input was rejected. Stable: clients may branch on these values.",
)


@strawberry.type(description="A problem with the input, pointing at the field it concerns.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field, e.g. ["parcel", "weightGrams"].'
    )
    message: str
    code: UserErrorCode  # type: ignore[valid-type]

    @classmethod
    def from_domain(cls, error: DomainUserError, prefix: tuple[str, ...] = ()) -> UserError:
        return cls(field=[*prefix, *error.field], message=error.message, code=error.code)
