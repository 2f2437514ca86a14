"""Making a searched plan exactly feasible, and placing what it could not keep.

The search engine works on a model of the problem that is close but not exact (PyVRP
has no break; pieces of a large problem see part of the fleet). Every route is
therefore checked against the product's own timing model (`insertion.schedule`:
capacities, windows, shift, break, route length). A route that fails sheds stops until
it holds; those stops, and any the search left out, are put back where they add least
(`insertion.cheapest_insertion`, into any route or an idle van), and what is still
left is planned by OR-Tools, whose model has the break, on the vans still idle. Only
what none of that places stays unplanned, and then truly for want of room.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from services.planner.insertion import Schedule, cheapest_insertion, schedule
from services.planner.problem import Job, Problem, SolveOptions
from services.planner.solver.model import RawRoute, solve_direct
from services.planner.solver.validation import Matrices, validate


def make_feasible(
    problem: Problem, m: Matrices, routes: Sequence[RawRoute], servable: Sequence[int]
) -> list[RawRoute]:
    """Routes that all hold under the timing model, serving as many of `servable` as
    shedding, cheapest insertion and OR-Tools on the idle vans can place."""
    kept: dict[int, list[int]] = {}
    leave: dict[int, int] = {}  # when the search had a route leave, if that works
    shed: list[int] = []
    for route in routes:
        jobs = list(route.jobs)
        if jobs and _timed(problem, m, route.vehicle, jobs, route.departure) is not None:
            kept[route.vehicle] = jobs
            leave[route.vehicle] = route.departure
            continue
        while jobs and _timed(problem, m, route.vehicle, jobs) is None:
            shed.append(jobs.pop(_worst(problem, m, route.vehicle, jobs)))
        if jobs:
            kept[route.vehicle] = jobs
    placed = {i for jobs in kept.values() for i in jobs}
    shed += [i for i in servable if i not in placed and i not in shed]
    left = _insert(problem, m, kept, shed)
    if left:
        _plan_on_idle_vans(problem, m, kept, left)
    return [_raw(problem, m, vehicle, jobs, leave.get(vehicle)) for vehicle, jobs in kept.items()]


def _timed(
    problem: Problem, m: Matrices, vehicle: int, jobs: Sequence[int], departure: int | None = None
) -> Schedule | None:
    """The route's schedule leaving at `departure` (or the timing model's own choice)."""
    van, route = problem.vehicles[vehicle], [problem.jobs[i] for i in jobs]
    timed = schedule(m.distance, m.duration, van, route, departure)
    if timed is None and departure is not None:
        timed = schedule(m.distance, m.duration, van, route)
    return timed


def _worst(problem: Problem, m: Matrices, vehicle: int, jobs: list[int]) -> int:
    """The position whose stop to shed: the one whose removal leaves the cheapest
    feasible route, or else the last stop."""
    best: tuple[int, int] | None = None
    for k in range(len(jobs)):
        timed = _timed(problem, m, vehicle, jobs[:k] + jobs[k + 1 :])
        if timed is not None and (best is None or timed.cost < best[0]):
            best = (timed.cost, k)
    return len(jobs) - 1 if best is None else best[1]


def _insert(
    problem: Problem, m: Matrices, routes: dict[int, list[int]], jobs: list[int]
) -> list[int]:
    """Put each job where it adds least, into a route or as the first stop of an idle
    van; tightest windows first. Returns the jobs nothing could take."""
    left = []
    idle = [k for k in range(len(problem.vehicles)) if k not in routes]
    for i in sorted(jobs, key=lambda i: (_width(problem.jobs[i]), i)):
        job = problem.jobs[i]
        best: tuple[int, int, int] | None = None  # (added cost, vehicle, position)
        for vehicle, route in routes.items():
            found = cheapest_insertion(
                m.distance,
                m.duration,
                problem.vehicles[vehicle],
                [problem.jobs[k] for k in route],
                job,
            )
            if found is not None and (best is None or found.added_cost < best[0]):
                best = (found.added_cost, vehicle, found.position)
        for vehicle in idle:
            alone = schedule(m.distance, m.duration, problem.vehicles[vehicle], [job])
            if alone is not None and (best is None or alone.cost < best[0]):
                best = (alone.cost, vehicle, 0)
        if best is None:
            left.append(i)
            continue
        _, vehicle, position = best
        if vehicle in routes:
            routes[vehicle].insert(position, i)
        else:
            routes[vehicle] = [i]
            idle.remove(vehicle)
    return left


def _width(job: Job) -> int:
    return job.window[1] - job.window[0]


# Seconds OR-Tools gets for the stops cheapest insertion could not place.
_FALLBACK_SECONDS = 1.0


def _plan_on_idle_vans(
    problem: Problem, m: Matrices, routes: dict[int, list[int]], jobs: list[int]
) -> None:
    """OR-Tools, which models breaks exactly, plans `jobs` on the vans with no route."""
    idle = [k for k in range(len(problem.vehicles)) if k not in routes]
    if not idle:
        return
    piece = subproblem(problem, m, jobs, idle)
    pm = validate(piece)
    solved = solve_direct(
        piece, pm, time.monotonic() + _FALLBACK_SECONDS, SolveOptions(on_progress=None)
    )
    for route in solved.routes:
        k = idle[next(n for n, v in enumerate(piece.vehicles) if v.id == route.vehicle_id)]
        index = {j.id: n for n, j in enumerate(piece.jobs)}
        routes[k] = [jobs[index[v.job_id]] for v in route.visits]


def _raw(
    problem: Problem, m: Matrices, vehicle: int, jobs: list[int], departure: int | None
) -> RawRoute:
    timed = _timed(problem, m, vehicle, jobs, departure)
    assert timed is not None  # every kept route was checked
    return RawRoute(
        vehicle, jobs, list(timed.starts), timed.departure, timed.arrival, list(timed.breaks)
    )


def subproblem(problem: Problem, m: Matrices, jobs: Sequence[int], fleet: Sequence[int]) -> Problem:
    """The problem restricted to some jobs and vehicles, with matrices cut to match."""
    vehicles = [problem.vehicles[k] for k in fleet]
    locations = sorted(
        {problem.jobs[i].location for i in jobs}
        | {v.start for v in vehicles}
        | {v.end for v in vehicles}
    )
    at = {loc: k for k, loc in enumerate(locations)}
    cut = np.ix_(locations, locations)
    return Problem(
        distance=m.distance[cut],
        duration=m.duration[cut],
        jobs=[replace(problem.jobs[i], location=at[problem.jobs[i].location]) for i in jobs],
        vehicles=[replace(v, start=at[v.start], end=at[v.end]) for v in vehicles],
        drop_penalty=problem.drop_penalty,
    )
