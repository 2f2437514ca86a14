"""What a plan run works from: the rows it read and the solver's problem over them.

`load_plan_input` reads an area's open deliveries of a day, its free shifts and the
routes an earlier wave published that have not left yet, and builds one problem whose
matrices cover the depot, every new delivery and every open route's stops. That is the
only matrix a plan run asks the provider for: late insertion, timing and the routes'
cost bases all read it from the `PlanInput`, so nothing calls the provider once the
write transaction is open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from services.core import areas
from services.core.db import utcnow
from services.core.models import (
    Delivery,
    DeliveryStatus,
    PlanRun,
    Route,
    ServiceArea,
    Shift,
    Vehicle,
)
from services.planner import problem as p
from services.planner import repository
from services.planner.mapping import build_problem, check_input, points
from services.planner.matrix import matrix_for

# When the day being planned has begun, the earliest a van can leave after planning.
LOADING = timedelta(minutes=30)


@dataclass(frozen=True)
class OpenRoute:
    """A route of an earlier wave that has not left yet: late bookings may join it."""

    route: Route
    deliveries: list[Delivery]  # in stop order
    shift: Shift
    vehicle: Vehicle


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


def problem_for(
    area: ServiceArea,
    midnight: datetime,
    deliveries: list[Delivery],
    shifts: list[tuple[Shift, Vehicle]],
    not_before: datetime | None = None,
) -> p.Problem:
    """The solver's problem for deliveries and vans, with the matrix provider's matrices.

    Raises `ProblemError` or `ShiftError` naming the first malformed delivery or shift
    (before the provider is asked), `MatrixError` when the provider fails.
    """
    check_input(area, deliveries, shifts)
    matrices = matrix_for(area, points(area, deliveries))
    return build_problem(area, midnight, deliveries, shifts, matrices, not_before)


def load_plan_input(session: Session, run: PlanRun) -> PlanInput:
    area = session.get(ServiceArea, run.area_id)
    assert area is not None  # enforced by the foreign key
    deliveries = repository.open_deliveries(session, area.id, run.date)
    fleet = repository.fleet(session, area.id)
    if not fleet:
        raise p.ProblemError(f"service area {area.code}: no active vehicle has a shift")
    routes = repository.routes_of_day(session, area.id, run.date)
    busy = {route.shift_id for route in routes}
    shifts = {shift.id: (shift, vehicle) for shift, vehicle in fleet if shift.id not in busy}
    open_routes = [
        open_route
        for route in routes
        if route.departure_at > utcnow() and (open_route := _open_route(session, route))
    ]
    routed = [d for open_route in open_routes for d in open_route.deliveries]
    route_shifts = [(open_route.shift, open_route.vehicle) for open_route in open_routes]
    midnight = areas.local_midnight(area, run.date)
    # A day that has begun is planned from now on, with time to load the vans.
    not_before = utcnow() + LOADING if areas.local_day_of(area, utcnow()) >= run.date else None
    world = problem_for(
        area, midnight, deliveries + routed, [*shifts.values(), *route_shifts], not_before
    )
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
    stops = repository.route_deliveries(session, route.id)
    if any(d.status != DeliveryStatus.PLANNED for d in stops):
        return None
    shift, vehicle = repository.route_van(session, route)
    return OpenRoute(route=route, deliveries=stops, shift=shift, vehicle=vehicle)
