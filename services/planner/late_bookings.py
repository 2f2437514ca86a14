"""Late bookings into routes an earlier wave published: where each one joins, and when.

Pure: works on a `PlanInput` and its matrices, writes nothing. Each new booking goes
into the open route where it adds least cost, if any can take it, without reordering
the route's other stops (`insertion.cheapest_insertion`); what no route takes is left
for the solver and the vans still free. `schedule_route` re-times an open route when
the write finds a late booking was cancelled meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from services.core.models import Route
from services.planner.insertion import Schedule, cheapest_insertion, schedule
from services.planner.plan_input import PlanInput


@dataclass(frozen=True)
class Insertions:
    """Late bookings placed into open routes: each route's new stop order and timing."""

    orders: dict[str, list[str]]  # route id -> delivery ids in stop order
    schedules: dict[str, Schedule]
    added_metres: dict[str, int]  # delivery id -> distance it added to its route

    @property
    def inserted(self) -> set[str]:
        return set(self.added_metres)


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
    return sum(int(plan_input.problem.distance[a][b]) for a, b in pairwise(places))


def schedule_route(plan_input: PlanInput, route: Route, order: Sequence[str]) -> Schedule | None:
    """The timing of an open route driving `order` (stops and late bookings alike)."""
    problem = plan_input.problem
    jobs = [plan_input.jobs[i] for i in order]
    return schedule(problem.distance, problem.duration, plan_input.fleet[route.shift_id], jobs)
