"""A second wave inserts late bookings into published routes before using free vans."""

from __future__ import annotations

from sqlmodel import col, select

from services.core.db import transaction
from services.core.models import (
    Delivery,
    DeliveryStatus,
    OutboxEvent,
    PlanRunStatus,
    Route,
    Stop,
)
from services.planner import runs, tasks
from tests.planner import world

ON_THE_WAY = [(40.72, -74.12), (40.71, -74.06), (40.70, -74.0)]


def _route_stops(route_id: str) -> list[tuple[int, str]]:
    with transaction() as session:
        return [
            (stop.sequence, stop.delivery_id)
            for stop in session.exec(
                select(Stop).where(Stop.route_id == route_id).order_by(col(Stop.sequence))
            ).all()
        ]


def test_a_late_booking_joins_the_published_route_and_the_rest_keep_their_order(db):
    with transaction() as session:
        area = world.area(session)
        for name in ("a", "b"):
            world.van(session, area, name, parcels=4, fixed=20_000)
        acme, bluebird = world.tenant(session, "Acme"), world.tenant(session, "Bluebird")
        first = [
            world.delivery(session, area, owner, at=at)
            for owner, at in zip((acme, bluebird, acme), ON_THE_WAY, strict=True)
        ]
    wave = world.plan()
    assert (wave.routes, wave.deliveries_planned) == (1, 3)
    route_id = world.fetch(first[0].id).route_id
    before = {d.id: world.fetch(d.id) for d in first}
    order_before = [delivery_id for _, delivery_id in _route_stops(route_id)]
    with transaction() as session:
        late = world.delivery(session, area, bluebird, at=(40.715, -74.09))

    run = world.plan()

    assert (run.deliveries_planned, run.deliveries_inserted, run.routes) == (1, 1, 0)
    stops = _route_stops(route_id)
    assert [number for number, _ in stops] == [1, 2, 3, 4]
    assert [d for _, d in stops if d != late.id] == order_before
    with transaction() as session:
        route = session.get(Route, route_id)
        assert route.stop_count == 4
        rows = {
            d.id: d
            for d in session.exec(select(Delivery).where(Delivery.route_id == route_id)).all()
        }
        eta_events = session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == "delivery.eta_updated")
        ).all()
    assert rows[late.id].status == DeliveryStatus.PLANNED
    assert {number: d for number, d in stops} == {d.stop_number: d.id for d in rows.values()}
    moved = {i for i, old in before.items() if rows[i].eta != old.eta}
    assert moved, "a stop inserted before others delays them"
    assert {e.payload["delivery_id"] for e in eta_events} == moved
    for event in eta_events:
        delivery = rows[event.payload["delivery_id"]]
        assert event.tenant_id == delivery.tenant_id
        assert event.payload["eta"] == delivery.eta.isoformat()
        assert event.payload["previous_eta"] == before[delivery.id].eta.isoformat()
    for delivery in rows.values():
        assert delivery.window_start <= delivery.eta <= delivery.window_end


def test_what_no_route_can_take_goes_to_a_free_van(db):
    with transaction() as session:
        area = world.area(session)
        for name in ("a", "b"):
            world.van(session, area, name, parcels=3, fixed=20_000)
        acme = world.tenant(session)
        for at in ON_THE_WAY:
            world.delivery(session, area, acme, at=at)
    assert world.plan().routes == 1
    with transaction() as session:
        late = world.delivery(session, area, acme, at=(40.715, -74.09))

    run = world.plan()

    assert (run.deliveries_planned, run.deliveries_inserted, run.routes) == (1, 0, 1)
    assert world.fetch(late.id).stop_number == 1


def _a_published_route():
    """An area whose day has one route out of three stops, and a van still free."""
    with transaction() as session:
        area = world.area(session)
        acme = world.tenant(session)
        for name in ("a", "b"):
            world.van(session, area, name, parcels=4, fixed=20_000)
        for at in ON_THE_WAY:
            world.delivery(session, area, acme, at=at)
    assert world.plan().routes == 1
    return area, acme


def test_an_insertion_run_puts_a_booking_into_a_route_and_opens_none(db):
    area, acme = _a_published_route()
    with transaction() as session:
        late = world.delivery(session, area, acme, at=(40.715, -74.09))

    assert tasks.insert_bookings(area.id, world.DAY.isoformat()) == PlanRunStatus.DONE

    row = world.fetch(late.id)
    assert row.status == DeliveryStatus.PLANNED and row.route_id is not None
    with transaction() as session:
        assert len(session.exec(select(Route)).all()) == 1


def test_a_booking_no_route_can_take_waits_for_the_wave_with_its_reason(db):
    """A free van is not opened for one booking at booking time: the next wave batches."""
    area, acme = _a_published_route()
    with transaction() as session:
        evening = world.delivery(session, area, acme, window=(18, 20))  # after every shift

    tasks.insert_bookings(area.id, world.DAY.isoformat())

    row = world.fetch(evening.id)
    assert (row.status, row.unplanned_reason) == (DeliveryStatus.BOOKED, runs.NO_ROUTE_FITS)
    with transaction() as session:
        assert len(session.exec(select(Route)).all()) == 1


def test_no_insertion_run_before_the_day_has_routes(db):
    with transaction() as session:
        area = world.area(session)
        world.van(session, area)
        booked = world.delivery(session, area, world.tenant(session))
    assert tasks.insert_bookings(area.id, world.DAY.isoformat()) is None
    assert world.fetch(booked.id).status == DeliveryStatus.BOOKED
