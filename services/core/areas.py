"""Service areas: looking them up and turning their local delivery day into UTC instants."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlmodel import Session, select

from services.core.models import ServiceArea, Shift

# Areas are configuration: written by operators now and then, read by every booking and
# quote. Those reads share one copy per process for up to SHARED_SECONDS; a write in
# this process forgets the copies at once, a write elsewhere is seen within that time.
SHARED_SECONDS = 30.0
_shared: dict[str, tuple[float, ServiceArea]] = {}


def get_area(session: Session, code: str) -> ServiceArea | None:
    """The area with this code, looked up once per session (a bulk booking asks often)."""
    known: dict[str, ServiceArea] = session.info.setdefault("areas_by_code", {})
    if code not in known:
        area = session.exec(select(ServiceArea).where(ServiceArea.code == code)).first()
        if area is None:
            return None
        known[code] = area
    return known[code]


def shifts_of(session: Session, area_id: str) -> list[Shift]:
    """Every shift the area's vans work on a delivery day."""
    return list(session.exec(select(Shift).where(Shift.area_id == area_id)).all())


def shared_area(session: Session, code: str) -> ServiceArea | None:
    """The area with this code, as a read-only copy shared by requests (see SHARED_SECONDS).

    The copy belongs to no session: read it, never change it or add it to a session.
    """
    cached = _shared.get(code)
    if cached is not None and time.monotonic() - cached[0] < SHARED_SECONDS:
        return cached[1]
    row = session.execute(
        select(*ServiceArea.__table__.columns).where(ServiceArea.code == code)  # type: ignore[attr-defined]
    ).first()
    if row is None:
        return None
    area = ServiceArea(**row._mapping)
    _shared[code] = (time.monotonic(), area)
    return area


@event.listens_for(ServiceArea, "after_insert")
@event.listens_for(ServiceArea, "after_update")
@event.listens_for(ServiceArea, "after_delete")
def forget_shared_areas(*_: Any) -> None:
    """Drop the shared copies (after area rows change behind the ORM's back)."""
    _shared.clear()


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


def all_areas(session: Session) -> list[ServiceArea]:
    """Every service area, by code (forms offer them)."""
    return list(session.exec(select(ServiceArea).order_by(ServiceArea.code)).all())


def first_area(session: Session) -> ServiceArea | None:
    areas = all_areas(session)
    return shared_area(session, areas[0].code) if areas else None


def area_by_id(session: Session, area_id: str) -> ServiceArea | None:
    return session.get(ServiceArea, area_id)
