"""Plan runs: take an area's open deliveries for a day, solve, and write the routes.

The same function serves the scheduled wave (Celery), `lastmile plan` and the API.
Solving happens outside any transaction; the result is written in one transaction
that re-checks each delivery is still BOOKED, so a concurrent cancellation or a
second plan run can never plan a delivery twice.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from services.core import areas
from services.core.db import transaction, utcnow
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
from services.core.usage import Usage, record_usage
from services.planner import problem as p
from services.planner.matrix import great_circle_matrix
from services.planner.solver import solve

MILLI = 1000  # the solver's cost unit is a thousandth of a minor unit
# Leaving a delivery out must cost more than any route could: ten thousand dollars.
DROP_PENALTY = 1_000_000 * MILLI


class PlanError(Exception):
    """The plan run cannot start (unknown area, bad date); nothing was written."""


@dataclass(frozen=True)
class PlanInput:
    """Everything the solver sees, plus what is needed to map its answer back."""

    area: ServiceArea
    day: date
    midnight: datetime  # the solver's time zero, in UTC
    deliveries: list[Delivery]
    shifts: dict[str, tuple[Shift, Vehicle]]
    problem: p.Problem


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
        solution = _solve(
            plan_input.problem,
            p.SolveOptions(
                time_limit=run.time_limit_seconds,
                on_progress=_progress_recorder(run.id, run, on_progress),
            ),
        )
        with transaction() as session:
            run = write_solution(session, run.id, plan_input, solution)
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
    busy = select(Route.shift_id).where(Route.area_id == area.id, Route.date == run.date)
    shifts = {
        shift.id: (shift, vehicle)
        for shift, vehicle in session.exec(
            select(Shift, Vehicle)
            .join(Vehicle, col(Vehicle.id) == col(Shift.vehicle_id))
            .where(
                Shift.area_id == area.id,
                col(Vehicle.active).is_(True),
                col(Shift.id).not_in(busy),
            )
            .order_by(col(Shift.id))
        ).all()
    }
    midnight = areas.local_midnight(area, run.date)
    return PlanInput(
        area=area,
        day=run.date,
        midnight=midnight.astimezone(UTC),
        deliveries=deliveries,
        shifts=shifts,
        problem=build_problem(area, midnight, deliveries, list(shifts.values())),
    )


def build_problem(
    area: ServiceArea,
    midnight: datetime,
    deliveries: list[Delivery],
    shifts: list[tuple[Shift, Vehicle]],
) -> p.Problem:
    """Translate deliveries and vans into the solver's integers (metres, seconds, millicents)."""
    points = [(area.depot_lat, area.depot_lng)] + [
        (d.dropoff_lat, d.dropoff_lng) for d in deliveries
    ]
    distance, duration = great_circle_matrix(
        points, get_settings().road_circuity, area.average_speed_kmh
    )

    zero = midnight.astimezone(UTC)  # subtract in UTC: DST days are 23 or 25 hours long

    def seconds(instant: datetime) -> int:
        return int((instant.astimezone(UTC) - zero).total_seconds())

    def local(moment: time) -> datetime:
        return datetime.combine(midnight.date(), moment, tzinfo=midnight.tzinfo)

    jobs = [
        p.Job(
            id=d.id,
            location=i + 1,
            demand=(d.weight_grams, 1),
            window=(seconds(d.window_start), seconds(d.window_end)),
            service=area.service_seconds,
        )
        for i, d in enumerate(deliveries)
    ]
    vehicles = [
        p.Vehicle(
            id=shift.id,
            start=0,
            end=0,
            capacity=(vehicle.capacity_grams, vehicle.capacity_parcels),
            shift=(seconds(local(shift.starts_at)), seconds(local(shift.ends_at))),
            fixed_cost=vehicle.fixed_cost_minor * MILLI,
            cost_per_distance=vehicle.cost_per_km_minor,  # minor/km == millicents/m
            cost_per_time=round(shift.hourly_wage_minor * MILLI / 3600),
        )
        for shift, vehicle in shifts
    ]
    return p.Problem(
        distance=distance,
        duration=duration,
        jobs=jobs,
        vehicles=vehicles,
        drop_penalty=DROP_PENALTY,
    )


def write_solution(
    session: Session, run_id: str, plan_input: PlanInput, solution: p.Solution
) -> PlanRun:
    """Write routes and stops for deliveries still BOOKED; record why the rest were left."""
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
    planned = 0
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
        km_share = (Decimal(solved.distance) / 1000 / len(visits)).quantize(Decimal("0.001"))
        for number, visit in enumerate(visits, start=1):
            delivery = current[visit.job_id]
            eta = plan_input.midnight + timedelta(seconds=visit.start)
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
            delivery.updated_at = now
            session.add(
                DeliveryEvent(
                    tenant_id=delivery.tenant_id,
                    delivery_id=delivery.id,
                    status=DeliveryStatus.PLANNED,
                    at=now,
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
                        quantity=km_share,
                        at=now,
                        area_code=area.code,
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
            planned += 1
        emit(session, "route.planned", {"route_id": route.id, "plan_run_id": run.id}, None)
        route_count += 1
        total_distance += route.distance_m
        total_cost += route.cost_minor
    for left in solution.unassigned:
        if left.job_id in still_open:
            current[left.job_id].unplanned_reason = left.reason
            current[left.job_id].updated_at = now
    run.status = PlanRunStatus.DONE
    run.finished_at = now
    run.deliveries_planned = planned
    run.deliveries_unplanned = len(still_open) - planned
    run.routes = route_count
    run.distance_m = total_distance
    run.cost_minor = total_cost
    run.best_cost_minor = total_cost
    return run
