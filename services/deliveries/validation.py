"""What a delivery's input must satisfy, checked before anything is written.

Each check adds what is wrong to a `Problems` collection instead of stopping at the
first, so one round trip shows a client every problem of its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from services.core import areas
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.models import ServiceArea

MAX_WEIGHT_GRAMS = 30_000  # one person can carry it to a door
MAX_SIDE_CM = 150
MIN_WINDOW = timedelta(minutes=30)
BOOKING_HORIZON_DAYS = 60
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{6,20}$")
MAX_REFERENCE_LENGTH = 128
# Length caps of the other texts a merchant stores, in characters.
MAX_TEXT = {
    ("recipient", "name"): 200,
    ("recipient", "email"): 254,  # RFC 5321's longest path
    ("dropoff", "line1"): 200,
    ("dropoff", "city"): 100,
    ("dropoff", "postalCode"): 20,
    ("dropoff", "country"): 100,
    ("reason",): 500,  # why a delivery was cancelled
    ("note",): 1000,  # a driver's note on a failed attempt
    ("proof", "signatureName"): 200,
    ("proof", "photoReference"): 500,
    ("proof", "pin"): 32,
}


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


class Problems:
    """The problems found in one input so far."""

    def __init__(self) -> None:
        self.errors: list[UserError] = []

    def reject(self, field: tuple[str, ...], message: str, code: UserErrorCode) -> None:
        self.errors.append(UserError(field, message, code))

    def raise_any(self) -> None:
        if self.errors:
            raise UserErrors(self.errors)

    def check_length(self, field: tuple[str, ...], value: str | None) -> None:
        """Reject `value` (TOO_LONG) if it is longer than MAX_TEXT allows for `field`."""
        limit = MAX_TEXT[field]
        if value is not None and len(value) > limit:
            self.reject(field, f"At most {limit} characters.", UserErrorCode.TOO_LONG)


def check_lengths(fields: dict[tuple[str, ...], str | None]) -> None:
    """UserErrors (TOO_LONG) for every text longer than MAX_TEXT allows."""
    problems = Problems()
    for field, value in fields.items():
        problems.check_length(field, value)
    problems.raise_any()


def validate_shipment(
    session: Session,
    area_code: str,
    dropoff: Dropoff,
    parcel: Parcel,
    day: date | None,
    now: datetime,
) -> tuple[ServiceArea, date]:
    """The area and day of a parcel to a drop-off (for quotes), or UserErrors."""
    problems = Problems()
    area = check_place(session, area_code, dropoff, parcel, problems)
    if area is None:
        raise UserErrors(problems.errors)
    resolved, _ = check_schedule(area, day, None, now, problems)
    problems.raise_any()
    return area, resolved


def validate_schedule(
    area: ServiceArea,
    day: date | None,
    window: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[date, tuple[datetime, datetime]]:
    """The day and UTC window asked for, or UserErrors saying why they cannot be had."""
    problems = Problems()
    day, (start, end) = check_schedule(area, day, window, now, problems)
    problems.raise_any()
    return day, (start.astimezone(UTC), end.astimezone(UTC))


def validate_recipient(recipient: Recipient) -> None:
    problems = Problems()
    check_contact(recipient, problems)
    problems.raise_any()


def check_reference(reference: str, problems: Problems) -> None:
    if not reference.strip():
        problems.reject(("reference",), "Reference must not be blank.", UserErrorCode.REQUIRED)
    elif len(reference) > MAX_REFERENCE_LENGTH:
        problems.reject(
            ("reference",),
            f"Reference is longer than {MAX_REFERENCE_LENGTH} characters.",
            UserErrorCode.TOO_LONG,
        )


def check_place(
    session: Session, area_code: str, dropoff: Dropoff, parcel: Parcel, problems: Problems
) -> ServiceArea | None:
    """The parcel, the drop-off and its area; None when the area does not exist."""
    _check_parcel(parcel, problems)
    for field, value in (
        (("dropoff", "line1"), dropoff.line1),
        (("dropoff", "city"), dropoff.city),
        (("dropoff", "postalCode"), dropoff.postal_code),
        (("dropoff", "country"), dropoff.country),
    ):
        problems.check_length(field, value)
    if not (-90 <= dropoff.lat <= 90 and -180 <= dropoff.lng <= 180):
        problems.reject(("dropoff",), "Coordinates are not on Earth.", UserErrorCode.INVALID)
        dropoff = Dropoff(lat=0.0, lng=0.0)
    area = areas.shared_area(session, area_code)
    if area is None:
        problems.reject(
            ("serviceArea",),
            f"No service area has the code {area_code!r}.",
            UserErrorCode.SERVICE_AREA_NOT_FOUND,
        )
        return None
    if not areas.contains(area, dropoff.lat, dropoff.lng):
        problems.reject(
            ("dropoff",),
            f"The drop-off is outside service area {area.code!r}.",
            UserErrorCode.OUTSIDE_SERVICE_AREA,
        )
    return area


def check_schedule(
    area: ServiceArea,
    requested_day: date | None,
    time_window: tuple[datetime, datetime] | None,
    now: datetime,
    problems: Problems,
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
        problems.reject(
            ("date",),
            f"Deliveries can be booked from {today} to {last} (local time in {area.code!r}).",
            UserErrorCode.DATE_NOT_BOOKABLE,
        )
    opens, closes = areas.delivery_day(area, day)
    if time_window is None:
        return day, (opens, closes)
    start, end = time_window
    if start.tzinfo is None or end.tzinfo is None:
        problems.reject(
            ("timeWindow",), "Times must carry a UTC offset.", UserErrorCode.INVALID_TIME_WINDOW
        )
        return day, (opens, closes)
    if end - start < MIN_WINDOW:
        problems.reject(
            ("timeWindow",),
            "The window must end at least 30 minutes after it starts.",
            UserErrorCode.INVALID_TIME_WINDOW,
        )
    elif start < opens or end > closes:
        problems.reject(
            ("timeWindow",),
            f"The window must lie within {area.code!r}'s delivery hours on {day}: "
            f"{opens.isoformat()} to {closes.isoformat()}.",
            UserErrorCode.TIME_WINDOW_OUTSIDE_SERVICE_HOURS,
        )
    elif end <= now:
        problems.reject(
            ("timeWindow",), "The window is in the past.", UserErrorCode.INVALID_TIME_WINDOW
        )
    return day, (start, end)


def check_contact(recipient: Recipient, problems: Problems) -> None:
    if not recipient.name.strip():
        problems.reject(
            ("recipient", "name"), "Recipient name must not be blank.", UserErrorCode.REQUIRED
        )
    problems.check_length(("recipient", "name"), recipient.name)
    if recipient.email is not None and len(recipient.email) > MAX_TEXT[("recipient", "email")]:
        problems.check_length(("recipient", "email"), recipient.email)
    elif recipient.email is not None and not _EMAIL.match(recipient.email):
        problems.reject(("recipient", "email"), "Not an email address.", UserErrorCode.INVALID)
    if recipient.phone is not None and not _PHONE.match(recipient.phone):
        problems.reject(("recipient", "phone"), "Not a phone number.", UserErrorCode.INVALID)


def _check_parcel(parcel: Parcel, problems: Problems) -> None:
    if parcel.weight_grams <= 0:
        problems.reject(
            ("parcel", "weightGrams"), "Weight must be positive.", UserErrorCode.INVALID
        )
    elif parcel.weight_grams > MAX_WEIGHT_GRAMS:
        problems.reject(
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
            problems.reject(("parcel", name), "Dimensions must be positive.", UserErrorCode.INVALID)
        elif side > MAX_SIDE_CM:
            problems.reject(
                ("parcel", name),
                f"No side may exceed {MAX_SIDE_CM} cm.",
                UserErrorCode.PARCEL_TOO_LARGE,
            )
