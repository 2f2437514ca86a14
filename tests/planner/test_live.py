"""Quotes' windows from the live plan: where the day's published routes can take one more."""

from __future__ import annotations

from datetime import datetime, time

from services.core.db import transaction
from services.deliveries.validation import Dropoff, Parcel
from services.planner.live import servable_windows
from tests.planner import world


def _slot(opens: int) -> tuple[datetime, datetime]:
    return (
        datetime.combine(world.DAY, time(opens), world.ZONE),
        datetime.combine(world.DAY, time(opens + 2), world.ZONE),
    )


MORNING, EVENING = _slot(9), _slot(18)
NEAR = Dropoff(lat=40.72, lng=-74.1)


def _ask(area, parcel: Parcel = Parcel(weight_grams=1_000)):
    with transaction() as session:
        return servable_windows(session, area, world.DAY, NEAR, parcel, [MORNING, EVENING])


def test_no_live_plan_before_the_day_has_routes(db):
    with transaction() as session:
        area = world.area(session)
        world.van(session, area)
        world.delivery(session, area, world.tenant(session))
    assert _ask(area) is None


def test_only_windows_a_published_route_can_take_the_parcel_in(db):
    """The only van works 08:00 to 17:00: the evening slot is not offered."""
    with transaction() as session:
        area = world.area(session)
        world.van(session, area)
        world.delivery(session, area, world.tenant(session))
    assert world.plan().routes == 1
    assert _ask(area) == [MORNING]
    assert _ask(area, Parcel(weight_grams=700_000)) == []  # heavier than the van carries
