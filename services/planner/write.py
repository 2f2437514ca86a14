"""Writing a solved plan: late bookings into open routes, new routes, their cost bases.

`write_solution` runs in one transaction that locks the area's row (one writer per
area at a time), re-checks each delivery is still BOOKED and each open route still has
the stops it had, so a concurrent cancellation or a second plan run can never plan a
delivery twice. Everything it writes was computed before: the routes, their timing and
their coalition costs (`cost_basis.PlanPrices`); it asks no matrix provider. Billing's
`billing.allocate_route_shares` task is kicked by name after commit: the planner never
imports billing.
Each delivery's own change (BOOKED to PLANNED, a new stop number or ETA) is the
delivery domain's (`services.deliveries.lifecycle`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Session

from services.core.celery_app import celery_app
from services.core.db import on_commit, utcnow
from services.core.models import (
    Delivery,
    DeliveryStatus,
    PlanRun,
    PlanRunStatus,
    Route,
)
from services.core.outbox import emit
from services.deliveries import lifecycle
from services.planner import problem as p
from services.planner import repository
from services.planner.cost_basis import PlanPrices, record_cost_basis
from services.planner.late_bookings import Insertions, schedule_route
from services.planner.mapping import MILLI
from services.planner.plan_input import PlanInput

logger = logging.getLogger(__name__)

# The reason a late booking stays BOOKED when its route changed while planning.
ROUTE_CHANGED = "ROUTE_CHANGED"
# Billing's task that allocates route-cost shares from cost bases, sent by name: the
# planner never imports billing.
ALLOCATE_ROUTE_SHARES = "billing.allocate_route_shares"


def write_solution(
    session: Session,
    run_id: str,
    plan_input: PlanInput,
    solution: p.Solution,
    insertions: Insertions | None = None,
    prices: PlanPrices | None = None,
) -> PlanRun:
    """Write insertions into open routes, then new routes and stops, for deliveries still
    BOOKED; record why the rest were left. Each new or grown route gets its cost basis
    (`cost_basis.record_cost_basis`) in this transaction, for billing to allocate, with
    coalition costs from `prices` (price the solution before the transaction opens)."""
    insertions = insertions or Insertions(orders={}, schedules={}, added_metres={})
    prices = prices or PlanPrices(plan_input)
    run = session.get(PlanRun, run_id)
    assert run is not None
    area = plan_input.area
    repository.lock_area(session, area.id)
    current = repository.lock_deliveries(session, [d.id for d in plan_input.deliveries])
    still_open = {i for i, d in current.items() if d.status == DeliveryStatus.BOOKED}
    now = utcnow()
    reasons = {left.job_id: left.reason for left in solution.unassigned}
    inserted = 0
    bases = 0  # cost basis revisions written, for billing to allocate
    added_distance = 0
    added_cost = 0
    for route_id, order in insertions.orders.items():
        new = {i: current[i] for i in order if i in insertions.inserted and i in still_open}
        change = _grow_route(session, plan_input, route_id, order, insertions, new, now)
        if change is None:
            reasons.update(dict.fromkeys(new, ROUTE_CHANGED))
            continue
        inserted += len(new)
        added_distance += change[0]
        added_cost += change[1]
        grown = session.get_one(Route, route_id)
        if record_cost_basis(session, grown, prices.pricer(grown.shift_id), new) is not None:
            bases += 1
    planned = inserted
    total_distance = 0
    total_cost = 0
    route_count = 0
    for solved in solution.routes:
        visits = [v for v in solved.visits if v.job_id in still_open]
        if not visits:
            continue
        shift, vehicle = plan_input.shifts[solved.vehicle_id]
        route = Route(
            plan_run_id=run.id,
            area_id=area.id,
            date=plan_input.day,
            vehicle_id=vehicle.id,
            shift_id=shift.id,
            departure_at=plan_input.midnight + timedelta(seconds=solved.departure),
            return_at=plan_input.midnight + timedelta(seconds=solved.arrival),
            distance_m=solved.distance,
            cost_minor=round(solved.cost / MILLI),
            stop_count=len(visits),
        )
        session.add(route)
        session.flush()
        km_share = Decimal(solved.distance) / len(visits) / 1000
        stops = [
            (current[visit.job_id], number, plan_input.midnight + timedelta(seconds=visit.start),
             km_share)
            for number, visit in enumerate(visits, start=1)
        ]  # fmt: skip
        lifecycle.plan_stops(session, route, stops, area.code, now)
        planned += len(stops)
        record_cost_basis(session, route, prices.pricer(shift.id))
        emit(session, "route.planned", {"route_id": route.id, "plan_run_id": run.id}, None)
        route_count += 1
        bases += 1
        total_distance += route.distance_m
        total_cost += route.cost_minor
    for job_id, reason in reasons.items():
        if job_id in still_open and current[job_id].status == DeliveryStatus.BOOKED:
            current[job_id].unplanned_reason = reason
            current[job_id].updated_at = now
    total_cost += added_cost
    run.status = PlanRunStatus.DONE
    run.finished_at = now
    run.deliveries_planned = planned
    run.deliveries_inserted = inserted
    run.deliveries_unplanned = len(still_open) - planned
    run.routes = route_count
    run.distance_m = total_distance + added_distance
    run.cost_minor = total_cost
    run.best_cost_minor = total_cost
    if bases:
        # Billing splits the routes' costs from their cost bases in its own transaction
        # (docs/billing.md); kick it now, its periodic sweep catches a lost kick.
        on_commit(session, _kick_allocation)
    return run


def _kick_allocation() -> None:
    try:
        celery_app.send_task(ALLOCATE_ROUTE_SHARES)
    except Exception:  # the broker being down must not fail a committed plan run
        logger.warning("Could not enqueue %s; its periodic sweep will run it.",
                       ALLOCATE_ROUTE_SHARES, exc_info=True)  # fmt: skip


def _grow_route(
    session: Session,
    plan_input: PlanInput,
    route_id: str,
    order: list[str],
    insertions: Insertions,
    new: dict[str, Delivery],
    now: datetime,
) -> tuple[int, int] | None:
    """Put `new` into the route in `order`, renumber and re-time its stops, and tell
    each merchant whose ETA moved; return the metres and minor units it added. None
    (nothing written) if the route's stops changed since they were read; late
    bookings no longer BOOKED are left out."""
    route = repository.lock_route(session, route_id)
    stops = repository.route_stops(session, route_id)
    expected = [i for i in order if i not in insertions.inserted]
    if [stop.delivery_id for stop in stops] != expected:
        return None
    if len(new) != len(order) - len(expected):
        # A late booking was cancelled meanwhile: time the route without it.
        order = [i for i in order if i in new or i not in insertions.inserted]
        timed = schedule_route(plan_input, route, order)
        if timed is None:
            return None
    else:
        timed = insertions.schedules[route_id]
    midnight = plan_input.midnight
    numbers = {delivery_id: number for number, delivery_id in enumerate(order, start=1)}
    moving = [stop for stop in stops if stop.sequence != numbers[stop.delivery_id]]
    # Two steps through negative numbers keep (route_id, sequence) unique throughout.
    for stop in moving:
        stop.sequence = -numbers[stop.delivery_id]
    session.flush()
    starts = dict(zip(order, timed.starts, strict=True))
    for stop in stops:
        delivery = session.get(Delivery, stop.delivery_id)
        assert delivery is not None
        eta = midnight + timedelta(seconds=starts[stop.delivery_id])
        lifecycle.move_stop(session, delivery, stop, numbers[stop.delivery_id], eta, now)
    session.flush()
    for delivery_id, delivery in new.items():
        eta = midnight + timedelta(seconds=starts[delivery_id])
        km_share = Decimal(insertions.added_metres[delivery_id]) / 1000
        lifecycle.plan(
            session, delivery, route, numbers[delivery_id], eta, km_share, plan_input.area.code, now
        )
    added = (timed.distance - route.distance_m, round(timed.cost / MILLI) - route.cost_minor)
    route.departure_at = midnight + timedelta(seconds=timed.departure)
    route.return_at = midnight + timedelta(seconds=timed.arrival)
    route.distance_m = timed.distance
    route.cost_minor = round(timed.cost / MILLI)
    route.stop_count = len(order)
    return added
