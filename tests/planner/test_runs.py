"""Plan runs end to end on the database: capacities, shifts, reasons, bad input."""

from __future__ import annotations

from datetime import datetime, time

import pytest
from sqlmodel import select

from services.api.seed import seed_demo
from services.core import areas
from services.core.db import transaction, utcnow
from services.core.models import Delivery, DeliveryStatus, PlanRunStatus, Route, Shift, Vehicle
from services.core.models.areas import ShiftError
from services.core.settings import get_settings
from services.planner import mapping
from services.planner.plan_input import problem_for
from services.planner.problem import Break
from tests.planner import world


def test_each_reason_is_recorded_and_the_delivery_stays_booked_for_the_next_wave(db):
    with transaction() as session:
        area = world.area(session)
        world.van(session, area, parcels=2, max_route_minutes=120)
        acme = world.tenant(session)
        fits = [world.delivery(session, area, acme, at=(40.72, -74.1 + k / 100)) for k in range(2)]
        no_room = world.delivery(session, area, acme, at=(40.73, -74.08))
        too_heavy = world.delivery(session, area, acme, grams=700_000)
        too_bulky = world.delivery(session, area, acme, sides=(200, 200, 150))
        evening = world.delivery(session, area, acme, window=(18, 20))
        too_far = world.delivery(session, area, acme, at=(40.85, -73.85))  # > 2 h round trip

    run = world.plan()

    assert run.status == PlanRunStatus.DONE
    assert (run.deliveries_planned, run.deliveries_unplanned) == (2, 5)
    assert {world.fetch(d.id).status for d in fits} == {DeliveryStatus.PLANNED}
    expected = {
        no_room.id: "NO_CAPACITY",
        too_heavy.id: "TOO_LARGE",
        too_bulky.id: "TOO_LARGE",
        evening.id: "WINDOW_UNREACHABLE",
        too_far.id: "WINDOW_UNREACHABLE",
    }
    for delivery_id, reason in expected.items():
        left = world.fetch(delivery_id)
        assert (left.status, left.unplanned_reason) == (DeliveryStatus.BOOKED, reason)


def test_a_booking_after_every_van_left_has_no_vehicle_available(db):
    with transaction() as session:
        area = world.area(session)
        world.van(session, area, parcels=1)
        acme = world.tenant(session)
        world.delivery(session, area, acme)
    assert world.plan().deliveries_planned == 1
    with transaction() as session:
        late = world.delivery(session, area, acme, at=(40.70, -74.05))

    run = world.plan()

    assert (run.deliveries_planned, run.deliveries_unplanned) == (0, 1)
    assert world.fetch(late.id).unplanned_reason == "NO_VEHICLE_AVAILABLE"


@pytest.mark.parametrize(("sides", "rides"), [((150, 150, 150), "large"), ((40, 30, 20), "e-van")])
def test_a_bulky_parcel_rides_the_large_van_and_a_small_one_the_cheap_e_van(db, sides, rides):
    with transaction() as session:
        area = world.area(session)
        world.van(session, area, "e-van", volume=3_000_000, per_km=12, fixed=3_500)
        world.van(session, area, "large", volume=11_000_000, per_km=45, fixed=6_000)
        parcel = world.delivery(session, area, world.tenant(session), sides=sides)

    assert world.plan().deliveries_planned == 1

    with transaction() as session:
        route = session.get(Route, world.fetch(parcel.id).route_id)
        assert session.get(Vehicle, route.vehicle_id).name == rides


def test_parcels_without_dimensions_count_as_the_default_carton(db):
    with transaction() as session:
        area = world.area(session)
        acme = world.tenant(session)
        plain = world.delivery(session, area, acme)
        boxed = world.delivery(session, area, acme, sides=(10, 20, 30))
    assert mapping.parcel_volume_cm3(plain) == mapping.DEFAULT_PARCEL_VOLUME_CM3
    assert mapping.parcel_volume_cm3(boxed) == 6_000


def test_shifts_become_vehicles_with_their_break_and_route_limit(db):
    with transaction() as session:
        area = world.area(session)
        shift = world.van(session, area, shift=(time(8), time(17)), max_route_minutes=480)
        vehicle = session.get(Vehicle, shift.vehicle_id)
        acme = world.tenant(session)
        job = world.delivery(session, area, acme, sides=(10, 20, 30), grams=1_500)
        midnight = areas.local_midnight(area, world.DAY)
        problem = problem_for(area, midnight, [job], [(shift, vehicle)])
    (van,) = problem.vehicles
    eight = 8 * 3600
    assert van.shift == (eight, 17 * 3600)
    assert van.breaks == (Break(window=(eight + 4 * 3600, eight + 5 * 3600), duration=1800),)
    assert van.max_duration == 480 * 60
    assert van.capacity == (600_000, 4_500_000, 100)
    assert van.cost_per_time == round(2_600 * mapping.MILLI / 3600)
    assert problem.jobs[0].demand == (1_500, 6_000, 1)


@pytest.mark.parametrize(
    ("now", "leaves", "has_break"),
    [((10, 0), 10 * 3600, True), ((12, 30), 12 * 3600 + 1800, False)],
)
def test_a_day_that_has_begun_is_planned_from_now(db, now, leaves, has_break):
    """No van leaves before `not_before`; a driver who could have had the break before
    leaving has none left to take."""
    with transaction() as session:
        area = world.area(session)
        shift = world.van(session, area, shift=(time(8), time(17)))
        vehicle = session.get(Vehicle, shift.vehicle_id)
        job = world.delivery(session, area, world.tenant(session))
        midnight = areas.local_midnight(area, world.DAY)
        not_before = datetime.combine(world.DAY, time(*now), world.ZONE)
        problem = problem_for(area, midnight, [job], [(shift, vehicle)], not_before)
    (van,) = problem.vehicles
    assert van.shift == (leaves, 17 * 3600)
    assert bool(van.breaks) == has_break


def test_a_shift_below_the_minimum_wage_is_refused():
    shift = Shift(
        area_id="a", vehicle_id="v", starts_at=time(8), ends_at=time(17), hourly_wage_minor=1_200
    )
    with pytest.raises(ShiftError, match=f"shift {shift.id}: pays 1200 per hour"):
        shift.check(1_600)


def test_a_break_that_does_not_fit_in_the_shift_is_refused():
    shift = Shift(
        area_id="a", vehicle_id="v", starts_at=time(8), ends_at=time(12), hourly_wage_minor=2_000
    )
    with pytest.raises(ShiftError, match="break window that does not fit"):
        shift.check(1_600)
    shift.break_minutes = 0  # a four-hour shift needs no break
    shift.check(1_600)


def test_seeding_refuses_a_fleet_below_the_minimum_wage(db, monkeypatch):
    monkeypatch.setattr(get_settings(), "minimum_hourly_wage_minor", 3_000)
    with pytest.raises(ShiftError, match="below the minimum wage 3000"), transaction() as session:
        seed_demo(session, utcnow().date())


def test_the_demo_fleet_mixes_large_vans_and_e_vans(db):
    with transaction() as session:
        seed_demo(session, utcnow().date())
        vans = session.exec(select(Vehicle)).all()
    kinds = {(v.capacity_volume_cm3, v.cost_per_km_minor) for v in vans}
    assert kinds == {(11_000_000, 45), (4_500_000, 12)}


def _bad_delivery(session, area, acme) -> str:
    return world.delivery(session, area, acme, grams=-5).id


def _inverted_window(session, area, acme) -> str:
    return world.delivery(session, area, acme, window=(15, 11)).id


def _off_the_map(session, area, acme) -> str:
    return world.delivery(session, area, acme, at=(123.0, -74.0)).id


BAD_INPUTS = {
    "negative weight": (_bad_delivery, "negative weight -5 g"),
    "window ends before it starts": (_inverted_window, "time window ends"),
    "coordinates out of range": (_off_the_map, "coordinates (123.0, -74.0) are out of range"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_malformed_input_fails_the_run_naming_the_delivery_and_writes_nothing(db, case):
    make, message = BAD_INPUTS[case]
    with transaction() as session:
        area = world.area(session)
        world.van(session, area)
        acme = world.tenant(session)
        world.delivery(session, area, acme)
        culprit = make(session, area, acme)
    before = world.counts()

    run = world.plan()

    assert run.status == PlanRunStatus.FAILED
    assert run.error.startswith("ProblemError: delivery " + culprit)
    assert message in run.error
    assert world.counts() == before
    with transaction() as session:
        statuses = set(session.exec(select(Delivery.status)).all())
    assert statuses == {DeliveryStatus.BOOKED}


def test_an_area_without_vehicles_fails_the_run_saying_so(db):
    with transaction() as session:
        area = world.area(session)
        world.delivery(session, area, world.tenant(session))

    run = world.plan()

    assert run.status == PlanRunStatus.FAILED
    assert run.error == "ProblemError: service area t: no active vehicle has a shift"


def test_a_shift_below_the_minimum_wage_fails_the_run(db):
    with transaction() as session:
        area = world.area(session)
        cheap = world.van(session, area, hourly_wage_minor=900)
        world.delivery(session, area, world.tenant(session))
    before = world.counts()

    run = world.plan()

    assert run.status == PlanRunStatus.FAILED
    assert f"shift {cheap.id}: pays 900 per hour, below the minimum wage 1600" in run.error
    assert world.counts() == before
