"""Service areas: looking them up and turning their local delivery day into UTC instants."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from services.core.models import ServiceArea


def get_area(session: Session, code: str) -> ServiceArea | None:
    """The area with this code, looked up once per session (a bulk booking asks often)."""
    known: dict[str, ServiceArea] = session.info.setdefault("areas_by_code", {})
    if code not in known:
        area = session.exec(select(ServiceArea).where(ServiceArea.code == code)).first()
        if area is None:
            return None
        known[code] = area
    return known[code]


def local_midnight(area: ServiceArea, day: date) -> datetime:
    """The instant the area's local calendar day starts (time zone and DST aware)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(area.timezone))


def delivery_day(area: ServiceArea, day: date) -> tuple[datetime, datetime]:
    """The delivery hours of `day` in the area, as aware datetimes."""
    zone = ZoneInfo(area.timezone)
    return (
        datetime.combine(day, area.day_start, tzinfo=zone),
        datetime.combine(day, area.day_end, tzinfo=zone),
    )


def local_day_of(area: ServiceArea, instant: datetime) -> date:
    """The area's local calendar date at `instant`."""
    return instant.astimezone(ZoneInfo(area.timezone)).date()


def next_delivery_date(area: ServiceArea, now: datetime) -> date:
    return local_day_of(area, now) + timedelta(days=1)


def contains(area: ServiceArea, lat: float, lng: float) -> bool:
    return area.south <= lat <= area.north and area.west <= lng <= area.east
