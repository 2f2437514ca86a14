"""Plan runs: take an area's open deliveries for a day, solve, and write the routes.

The same function serves the scheduled wave (Celery), `lastmile plan` and the API.
When an earlier wave already published routes for the day, each new booking is first
inserted into one of them where that is feasible and cheapest (`insertion`), without
reordering the other stops; what is left is solved on the vans still free. Solving
happens outside any transaction; the result is written in one transaction that
re-checks each delivery is still BOOKED and each route still has the stops it had,
so a concurrent cancellation or a second plan run can never plan a delivery twice.
That transaction also writes each new or grown route's cost basis, which billing's
`billing.allocate_route_shares` task (kicked by name after commit) splits among the
merchants on it: the planner never imports billing.
Malformed input (`ProblemError`, `ShiftError`) or a failing matrix provider
(`MatrixError`) fails the run with a message naming the culprit and writes nothing else.
See docs/planning.md.
"""

from __future__ import annotations

import logging
import math
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

from sqlmodel import Session, col, select

from services.core import areas
from services.core.celery_app import celery_app
from services.core.db import on_commit, transaction, utcnow
from services.core.meters import Usage
from services.core.models import (
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    PlanRun,
    PlanRunStatus,
    Route,
    ServiceArea,
    Shift,
    Stop,
    Vehicle,
)
from services.core.outbox import emit
from services.core.settings import get_settings
from services.core.usage import record_usage
from services.planner import problem as p
from services.planner.insertion import Schedule, cheapest_insertion, schedule
from services.planner.matrix import matrix_for
from services.planner.solver import solve
from services.planner.standalone import record_cost_basis

logger = logging.getLogger(__name__)

MILLI = 1000  # the solver's cost unit is a thousandth of a minor unit
# Leaving a delivery out must cost more than any route could: ten thousand dollars.
DROP_PENALTY = 1_000_000 * MILLI
# The volume of a parcel booked without dimensions: a 40 x 30 x 20 cm carton, a common
# e-commerce box, so that an e-van is not promised more parcels than it can hold.
DEFAULT_PARCEL_VOLUME_CM3 = 24_000
# The reason a late booking stays BOOKED when its route changed while planning.
ROUTE_CHANGED = "ROUTE_CHANGED"
# Billing's task that allocates route-cost shares from cost bases, sent by name: the
# planner never imports billing.
ALLOCATE_ROUTE_SHARES = "billing.allocate_route_shares"


class PlanError(Exception):
    """The plan run cannot start (unknown area, bad date); nothing was written."""


@dataclass(frozen=True)
class OpenRoute:
    """A route of an earlier wave that has not left yet: late bookings may join it."""

    route: Route
    deliveries: list[Delivery]  # in stop order


@dataclass(frozen=True)
class PlanInput:
    """Everything the solver sees, plus what is needed to map its answer back.

    `problem` holds the new bookings as jobs and the free shifts as vehicles, but its
    matrices also cover the stops of `open_routes`; `fleet` and `jobs` hold the
    solver's view of every shift and delivery involved, open routes' included.
    """

    area: ServiceArea
    day: date
    midnight: datetime  # the solver's time zero, in UTC
    deliveries: list[Delivery]
    shifts: dict[str, tuple[Shift, Vehicle]]
    problem: p.Problem
    open_routes: list[OpenRoute]
    fleet: dict[str, p.Vehicle]
    jobs: dict[str, p.Job]


@dataclass(frozen=True)
class Insertions:
    """Late bookings placed into open routes: each route's new stop order and timing."""

    orders: dict[str, list[str]]  # route id -> delivery ids in stop order
    schedules: dict[str, Schedule]
    added_metres: dict[str, int]  # delivery id -> distance it added to its route

    @property
    def inserted(self) -> set[str]:
        return set(self.added_metres)


def request_plan(
    session: Session, area_code: str, day: date, trigger: str, time_limit: float
) -> PlanRun:
    area = areas.get_area(session, area_code)
    if area is None:
        raise PlanError(f"No service area has the code {area_code!r}.")
    if time_limit <= 0:
        raise PlanError("The time limit must be positive.")
    run = PlanRun(area_id=area.id, date=day, trigger=trigger, time_limit_seconds=time_limit)
    session.add(run)
    session.flush()
    return run


def execute(plan_run_id: str, on_progress: Callable[[PlanRun], None] | None = None) -> PlanRun:
    """Solve a queued plan run and write its routes. Never leaves it SOLVING."""
    try:
        with transaction() as session:
            run = session.exec(
                select(PlanRun).where(PlanRun.id == plan_run_id).with_for_update()
            ).first()
            if run is None:
                raise PlanError(f"No plan run {plan_run_id!r}.")
            if run.status != PlanRunStatus.QUEUED:
                return run
            run.status = PlanRunStatus.SOLVING
            run.started_at = utcnow()
            plan_input = load_input(session, run)
            run.deliveries_considered = len(plan_input.deliveries)
        if on_progress:
            on_progress(run)
        insertions = insert_late_bookings(plan_input)
        left = [job for job in plan_input.problem.jobs if job.id not in insertions.inserted]
        solution = _solve(
            replace(plan_input.problem, jobs=left),
            p.SolveOptions(
                time_limit=run.time_limit_seconds,
                on_progress=_progress_recorder(run.id, run, on_progress),
            ),
        )
        with transaction() as session:
            run = write_solution(session, run.id, plan_input, solution, insertions)
    except Exception as error:
        with transaction() as session:
            failed = session.get(PlanRun, plan_run_id)
            if failed is None:
                raise
            failed.status = PlanRunStatus.FAILED
            failed.error = f"{type(error).__name__}: {error}"
            failed.finished_at = utcnow()
            run = failed
    if on_progress:
        on_progress(run)
    return run


def _solve(problem: p.Problem, options: p.SolveOptions) -> p.Solution:
    """Solve, short-cutting the two cases with nothing to search."""
    if not problem.jobs or not problem.vehicles:
        left = tuple(p.Unassigned(job.id, "NO_VEHICLE_AVAILABLE") for job in problem.jobs)
        return p.Solution(routes=(), unassigned=left, distance=0, cost=0)
    return solve(problem, options)


def _progress_recorder(
    run_id: str, run: PlanRun, on_progress: Callable[[PlanRun], None] | None
) -> p.ProgressCallback:
    """Store the best cost so far, at most once a second, so the API can show it."""
    last = [0.0]

    def record(cost: int) -> None:
        now = clock.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        with transaction() as session:
            row = session.get(PlanRun, run_id)
            if row is not None:
                row.best_cost_minor = round(cost / MILLI)
                run.best_cost_minor = row.best_cost_minor
        if on_progress:
            on_progress(run)

    return record


def load_input(session: Session, run: PlanRun) -> PlanInput:
    area = session.get(ServiceArea, run.area_id)
    assert area is not None  # enforced by the foreign key
    deliveries = list(
        session.exec(
            select(Delivery)
            .where(
                Delivery.area_id == area.id,
                Delivery.date == run.date,
                Delivery.status == DeliveryStatus.BOOKED,
                col(Delivery.sandbox).is_(False),
            )
            .order_by(col(Delivery.id))
        ).all()
    )
    fleet = list(
        session.exec(
            select(Shift, Vehicle)
            .join(Vehicle, col(Vehicle.id) == col(Shift.vehicle_id))
            .where(Shift.area_id == area.id, col(Vehicle.active).is_(True))
            .order_by(col(Shift.id))
        ).all()
    )
    if not fleet:
        raise p.ProblemError(f"service area {area.code}: no active vehicle has a shift")
    routes = session.exec(
        select(Route)
        .where(Route.area_id == area.id, Route.date == run.date)
        .order_by(col(Route.id))
    ).all()
    busy = {route.shift_id for route in routes}
    shifts = {shift.id: (shift, vehicle) for shift, vehicle in fleet if shift.id not in busy}
    open_routes = [
        open_route
        for route in routes
        if route.departure_at > utcnow() and (open_route := _open_route(session, route))
    ]
    route_shifts = []
    for open_route in open_routes:
        shift = session.get(Shift, open_route.route.shift_id)
        vehicle = session.get(Vehicle, open_route.route.vehicle_id)
        assert shift is not None and vehicle is not None  # foreign keys
        route_shifts.append((shift, vehicle))
    routed = [d for open_route in open_routes for d in open_route.deliveries]
    midnight = areas.local_midnight(area, run.date)
    world = build_problem(area, midnight, deliveries + routed, [*shifts.values(), *route_shifts])
    new = {d.id for d in deliveries}
    return PlanInput(
        area=area,
        day=run.date,
        midnight=midnight.astimezone(UTC),
        deliveries=deliveries,
        shifts=shifts,
        problem=replace(
            world,
            jobs=[job for job in world.jobs if job.id in new],
            vehicles=[vehicle for vehicle in world.vehicles if vehicle.id in shifts],
        ),
        open_routes=open_routes,
        fleet={vehicle.id: vehicle for vehicle in world.vehicles},
        jobs={job.id: job for job in world.jobs},
    )


def _open_route(session: Session, route: Route) -> OpenRoute | None:
    """The route with its deliveries in stop order, if none of them has moved on."""
    stops = session.exec(
        select(Delivery)
        .join(Stop, col(Stop.delivery_id) == col(Delivery.id))
        .where(Stop.route_id == route.id)
        .order_by(col(Stop.sequence))
    ).all()
    if any(d.status != DeliveryStatus.PLANNED for d in stops):
        return None
    return OpenRoute(route=route, deliveries=list(stops))


def parcel_volume_cm3(delivery: Delivery) -> int:
    """The parcel's volume from its dimensions, or the default carton's when not given."""
    sides = (delivery.length_cm, delivery.width_cm, delivery.height_cm)
    if any(side is None for side in sides):
        return DEFAULT_PARCEL_VOLUME_CM3
    return math.prod(side for side in sides if side is not None)


def check_delivery(delivery: Delivery) -> None:
    """Raise `ProblemError` naming the delivery if it cannot be put in a problem at all."""
    where = f"delivery {delivery.id}"
    if not _valid_coordinates(delivery.dropoff_lat, delivery.dropoff_lng):
        raise p.ProblemError(
            f"{where}: coordinates ({delivery.dropoff_lat}, {delivery.dropoff_lng}) "
            "are out of range"
        )
    if delivery.weight_grams < 0:
        raise p.ProblemError(f"{where}: negative weight {delivery.weight_grams} g")
    sides = (delivery.length_cm, delivery.width_cm, delivery.height_cm)
    if any(side is not None and side < 0 for side in sides):
        raise p.ProblemError(f"{where}: negative parcel dimensions {sides}")
    if delivery.window_end < delivery.window_start:
        raise p.ProblemError(
            f"{where}: time window ends ({delivery.window_end.isoformat()}) before it "
            f"starts ({delivery.window_start.isoformat()})"
        )


def _valid_coordinates(lat: float, lng: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180


def build_problem(
    area: ServiceArea,
    midnight: datetime,
    deliveries: list[Delivery],
    shifts: list[tuple[Shift, Vehicle]],
) -> p.Problem:
    """Translate deliveries and vans into the solver's integers (metres, seconds, millicents).

    Demand and capacity have three dimensions: grams, cubic centimetres, parcels.
    Raises `ProblemError` or `ShiftError` naming the first malformed delivery or shift.
    """
    if not _valid_coordinates(area.depot_lat, area.depot_lng):
        raise p.ProblemError(f"service area {area.code}: depot coordinates are out of range")
    minimum_wage = get_settings().minimum_hourly_wage_minor
    for delivery in deliveries:
        check_delivery(delivery)
    for shift, _ in shifts:
        shift.check(minimum_wage)
    points = [(area.depot_lat, area.depot_lng)] + [
        (d.dropoff_lat, d.dropoff_lng) for d in deliveries
    ]
    distance, duration = matrix_for(area, points)

    zero = midnight.astimezone(UTC)  # subtract in UTC: DST days are 23 or 25 hours long

    def seconds(instant: datetime) -> int:
        return int((instant.astimezone(UTC) - zero).total_seconds())

    def local(moment: time) -> datetime:
        return datetime.combine(midnight.date(), moment, tzinfo=midnight.tzinfo)

    jobs = [
        p.Job(
            id=d.id,
            location=i + 1,
            demand=(d.weight_grams, parcel_volume_cm3(d), 1),
            window=(seconds(d.window_start), seconds(d.window_end)),
            service=area.service_seconds,
        )
        for i, d in enumerate(deliveries)
    ]
    vehicles = [
        _vehicle(shift, vehicle, seconds(local(shift.starts_at)), seconds(local(shift.ends_at)))
        for shift, vehicle in shifts
    ]
    return p.Problem(
        distance=distance,
        duration=duration,
        jobs=jobs,
        vehicles=vehicles,
        drop_penalty=DROP_PENALTY,
    )


def _vehicle(shift: Shift, vehicle: Vehicle, starts: int, ends: int) -> p.Vehicle:
    breaks: tuple[p.Break, ...] = ()
    if shift.break_minutes > 0:
        window = (
            starts + shift.break_earliest_minutes * 60,
            starts + shift.break_latest_minutes * 60,
        )
        breaks = (p.Break(window=window, duration=shift.break_minutes * 60),)
    return p.Vehicle(
        id=shift.id,
        start=0,
        end=0,
        capacity=(vehicle.capacity_grams, vehicle.capacity_volume_cm3, vehicle.capacity_parcels),
        shift=(starts, ends),
        max_duration=shift.max_route_minutes * 60 if shift.max_route_minutes else None,
        fixed_cost=vehicle.fixed_cost_minor * MILLI,
        cost_per_distance=vehicle.cost_per_km_minor,  # minor/km == millicents/m
        cost_per_time=round(shift.hourly_wage_minor * MILLI / 3600),
        breaks=breaks,
    )


def insert_late_bookings(plan_input: PlanInput) -> Insertions:
    """Put each new booking into the open route where it adds least cost, if any can
    take it. Tightest windows go first: they have the fewest places to go."""
    problem = plan_input.problem
    orders = {o.route.id: [d.id for d in o.deliveries] for o in plan_input.open_routes}
    vans = {o.route.id: plan_input.fleet[o.route.shift_id] for o in plan_input.open_routes}
    schedules: dict[str, Schedule] = {}
    added_metres: dict[str, int] = {}
    for job in sorted(problem.jobs, key=lambda j: (j.window[1] - j.window[0], j.id)):
        best: tuple[int, str, int, Schedule] | None = None
        for route_id, order in orders.items():
            route = [plan_input.jobs[i] for i in order]
            found = cheapest_insertion(
                problem.distance, problem.duration, vans[route_id], route, job
            )
            if found is not None and (best is None or found.added_cost < best[0]):
                best = (found.added_cost, route_id, found.position, found.schedule)
        if best is None:
            continue
        _, route_id, position, timed = best
        before = schedules.get(route_id)
        orders[route_id].insert(position, job.id)
        added_metres[job.id] = timed.distance - (
            before.distance if before else _route_distance(plan_input, route_id)
        )
        schedules[route_id] = timed
    return Insertions(
        orders={route_id: orders[route_id] for route_id in schedules},
        schedules=schedules,
        added_metres=added_metres,
    )


def _route_distance(plan_input: PlanInput, route_id: str) -> int:
    open_route = next(o for o in plan_input.open_routes if o.route.id == route_id)
    places = [0, *(plan_input.jobs[d.id].location for d in open_route.deliveries), 0]
    return sum(plan_input.problem.distance[a][b] for a, b in pairwise(places))


def write_solution(
    session: Session,
    run_id: str,
    plan_input: PlanInput,
    solution: p.Solution,
    insertions: Insertions | None = None,
) -> PlanRun:
    """Write insertions into open routes, then new routes and stops, for deliveries still
    BOOKED; record why the rest were left. Each new or grown route gets its cost basis
    (`standalone.record_cost_basis`) in this transaction, for billing to allocate."""
    insertions = insertions or Insertions(orders={}, schedules={}, added_metres={})
    run = session.get(PlanRun, run_id)
    assert run is not None
    area = plan_input.area
    # Serialise writers per area: lock the area row for the rest of the transaction.
    session.exec(select(ServiceArea).where(ServiceArea.id == area.id).with_for_update()).one()
    ids = [d.id for d in plan_input.deliveries]
    current = {
        d.id: d
        for d in session.exec(
            select(Delivery).where(col(Delivery.id).in_(ids)).with_for_update()
        ).all()
    }
    still_open = {i for i, d in current.items() if d.status == DeliveryStatus.BOOKED}
    now = utcnow()
    writer = _Writer(session, plan_input, now)
    reasons = {left.job_id: left.reason for left in solution.unassigned}
    inserted = 0
    bases = 0  # cost basis revisions written, for billing to allocate
    added_distance = 0
    added_cost = 0
    for route_id, order in insertions.orders.items():
        new = {i: current[i] for i in order if i in insertions.inserted and i in still_open}
        change = writer.insert(route_id, order, insertions, new)
        if change is None:
            reasons.update(dict.fromkeys(new, ROUTE_CHANGED))
            continue
        inserted += len(new)
        added_distance += change[0]
        added_cost += change[1]
        if record_cost_basis(session, session.get_one(Route, route_id), new) is not None:
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
        km_share = Decimal(solved.distance) / len(visits)
        for number, visit in enumerate(visits, start=1):
            eta = plan_input.midnight + timedelta(seconds=visit.start)
            writer.plan(current[visit.job_id], route, number, eta, km_share)
            planned += 1
        record_cost_basis(session, route)
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


class _Writer:
    """The writes that put a delivery on a route, shared by new routes and insertions."""

    def __init__(self, session: Session, plan_input: PlanInput, now: datetime) -> None:
        self.session = session
        self.plan_input = plan_input
        self.now = now

    def plan(
        self, delivery: Delivery, route: Route, number: int, eta: datetime, metres: Decimal
    ) -> None:
        """Stop, status, tracking event, its share of the route's km, `delivery.planned`."""
        session = self.session
        session.add(
            Stop(
                route_id=route.id,
                delivery_id=delivery.id,
                tenant_id=delivery.tenant_id,
                sequence=number,
                eta=eta,
            )
        )
        delivery.status = DeliveryStatus.PLANNED
        delivery.route_id = route.id
        delivery.stop_number = number
        delivery.eta = eta
        delivery.unplanned_reason = None
        delivery.updated_at = self.now
        session.add(
            DeliveryEvent(
                tenant_id=delivery.tenant_id,
                delivery_id=delivery.id,
                status=DeliveryStatus.PLANNED,
                at=self.now,
                detail=f"route {route.id}, stop {number}",
            )
        )
        record_usage(
            session,
            [
                Usage(
                    id=f"{delivery.id}:route_km",
                    tenant_id=delivery.tenant_id,
                    meter="route_km",
                    quantity=(metres / 1000).quantize(Decimal("0.001")),
                    at=self.now,
                    area_code=self.plan_input.area.code,
                )
            ],
        )
        emit(
            session,
            "delivery.planned",
            {
                "delivery_id": delivery.id,
                "route_id": route.id,
                "stop_number": number,
                "eta": eta.isoformat(),
            },
            delivery.tenant_id,
        )

    def insert(
        self,
        route_id: str,
        order: list[str],
        insertions: Insertions,
        new: dict[str, Delivery],
    ) -> tuple[int, int] | None:
        """Put `new` into the route in `order`, renumber and re-time its stops, and tell
        each merchant whose ETA moved; return the metres and minor units it added. None
        (nothing written) if the route's stops changed since they were read; late
        bookings no longer BOOKED are left out."""
        session = self.session
        route = session.exec(select(Route).where(Route.id == route_id).with_for_update()).one()
        stops = list(
            session.exec(
                select(Stop).where(Stop.route_id == route_id).order_by(col(Stop.sequence))
            ).all()
        )
        expected = [i for i in order if i not in insertions.inserted]
        if [stop.delivery_id for stop in stops] != expected:
            return None
        if len(new) != len(order) - len(expected):
            # A late booking was cancelled meanwhile: time the route without it.
            order = [i for i in order if i in new or i not in insertions.inserted]
            timed = schedule_route(self.plan_input, route, order)
            if timed is None:
                return None
        else:
            timed = insertions.schedules[route_id]
        midnight = self.plan_input.midnight
        numbers = {delivery_id: number for number, delivery_id in enumerate(order, start=1)}
        moving = [stop for stop in stops if stop.sequence != numbers[stop.delivery_id]]
        # Two steps through negative numbers keep (route_id, sequence) unique throughout.
        for stop in moving:
            stop.sequence = -numbers[stop.delivery_id]
        session.flush()
        starts = dict(zip(order, timed.starts, strict=True))
        for stop in stops:
            stop.sequence = numbers[stop.delivery_id]
            eta = midnight + timedelta(seconds=starts[stop.delivery_id])
            delivery = session.get(Delivery, stop.delivery_id)
            assert delivery is not None
            delivery.stop_number = stop.sequence
            if eta != stop.eta:
                previous = stop.eta
                stop.eta = eta
                delivery.eta = eta
                delivery.updated_at = self.now
                emit(
                    session,
                    "delivery.eta_updated",
                    {
                        "delivery_id": delivery.id,
                        "route_id": route.id,
                        "stop_number": stop.sequence,
                        "eta": eta.isoformat(),
                        "previous_eta": previous.isoformat(),
                    },
                    delivery.tenant_id,
                )
        session.flush()
        for delivery_id, delivery in new.items():
            eta = midnight + timedelta(seconds=starts[delivery_id])
            metres = Decimal(insertions.added_metres[delivery_id])
            self.plan(delivery, route, numbers[delivery_id], eta, metres)
        added = (timed.distance - route.distance_m, round(timed.cost / MILLI) - route.cost_minor)
        route.departure_at = midnight + timedelta(seconds=timed.departure)
        route.return_at = midnight + timedelta(seconds=timed.arrival)
        route.distance_m = timed.distance
        route.cost_minor = round(timed.cost / MILLI)
        route.stop_count = len(order)
        return added


def schedule_route(plan_input: PlanInput, route: Route, order: Sequence[str]) -> Schedule | None:
    """The timing of an open route driving `order` (stops and late bookings alike)."""
    problem = plan_input.problem
    jobs = [plan_input.jobs[i] for i in order]
    return schedule(problem.distance, problem.duration, plan_input.fleet[route.shift_id], jobs)
