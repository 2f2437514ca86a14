"""The search engine: PyVRP's iterated local search over the planner's problem.

PyVRP (MIT, C++) models everything a plan run has except the driver's break:
multi-dimensional capacity, vans of several kinds with their fixed, per-distance and
per-time costs, shifts, the longest route, optional stops with a prize for serving
them, and warm starts. The break is modelled conservatively instead (`to_data`): a
van with a break gets its shift end and route-length limit shortened by the break, and
every stop whose window closes after the earliest break could start gets its window's
end brought forward by the break. Any plan that is feasible that way stays feasible
when the break is put in at the first moment it may start (every later time moves by
at most the break), so the exact timing model (`insertion.schedule`) always finds a
schedule for it; `repair.make_feasible` still checks every route exactly.

Pure computation on a `Problem` and its `Matrices`; no database, no network.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyvrp
from pyvrp.exceptions import PenaltyBoundWarning
from pyvrp.stop import MaxRuntime

from services.planner.problem import Problem, Vehicle
from services.planner.solver.model import RawRoute
from services.planner.solver.validation import Matrices

# Prizes and penalties are capped so that PyVRP's 64-bit cost sums cannot overflow.
_MAX_PRIZE = 2**62 // 10**5


@dataclass(frozen=True)
class Data:
    """A problem as PyVRP sees it, and how to map its answer back."""

    data: pyvrp.ProblemData
    jobs: list[int]  # PyVRP client k is problem job jobs[k]
    vehicles: list[list[int]]  # per PyVRP vehicle type, the problem's vehicles of it


def break_time(vehicle: Vehicle) -> int:
    return sum(b.duration for b in vehicle.breaks)


def kind(v: Vehicle) -> tuple[object, ...]:
    """What makes two vans interchangeable: everything but their id."""
    return (v.start, v.end, v.capacity, v.shift, v.max_duration, v.fixed_cost,
            v.cost_per_distance, v.cost_per_time, v.breaks)  # fmt: skip


def to_data(problem: Problem, m: Matrices, jobs: Sequence[int], optional: bool) -> Data:
    """PyVRP's problem over `jobs` (problem job indices) and all of the problem's vans.

    Depots come first (one per distinct start or end location), then one location per
    job. With `optional`, leaving a job out costs the problem's drop penalty (its prize);
    otherwise every job is required.
    """
    vehicles = problem.vehicles
    depot_locations = sorted({v.start for v in vehicles} | {v.end for v in vehicles})
    depot_index = {loc: k for k, loc in enumerate(depot_locations)}
    locations = np.array(depot_locations + [problem.jobs[i].location for i in jobs], dtype=np.int64)
    cut = np.ix_(locations, locations)
    distance = np.ascontiguousarray(m.distance[cut])
    duration = np.ascontiguousarray(m.duration[cut])
    np.fill_diagonal(distance, 0)
    np.fill_diagonal(duration, 0)

    # A break shifts what follows it by at most its length: stops whose window may
    # close after some van's break could start are planned as if it closed that much
    # earlier (never before it opens).
    pause = max((break_time(v) for v in vehicles), default=0)
    earliest_break = min((b.window[0] for v in vehicles for b in v.breaks), default=math.inf)
    prize = min(problem.drop_penalty or 0, _MAX_PRIZE)
    clients = []
    for k, i in enumerate(jobs):
        job = problem.jobs[i]
        late = job.window[1]
        if pause and late > earliest_break:
            late = max(job.window[0], late - pause)
        clients.append(
            pyvrp.Client(
                location=len(depot_locations) + k,
                delivery=list(job.demand),
                service_duration=job.service,
                tw_early=job.window[0],
                tw_late=late,
                prize=prize if optional else 0,
                required=not optional,
            )
        )
    depots = [pyvrp.Depot(location=k) for k in range(len(depot_locations))]

    kinds: dict[tuple[object, ...], list[int]] = {}
    for index, v in enumerate(vehicles):
        kinds.setdefault(kind(v), []).append(index)
    types = []
    for members in kinds.values():
        v = vehicles[members[0]]
        rest = break_time(v)
        longest = v.shift[1] - v.shift[0] if v.max_duration is None else v.max_duration
        types.append(
            pyvrp.VehicleType(
                num_available=len(members),
                capacity=list(v.capacity),
                start_depot=depot_index[v.start],
                end_depot=depot_index[v.end],
                fixed_cost=v.fixed_cost,
                tw_early=v.shift[0],
                tw_late=max(v.shift[0], v.shift[1] - rest),
                # The timing model has a van leave before its break must have started.
                start_late=min((b.window[1] for b in v.breaks), default=None),
                shift_duration=max(0, min(longest, v.shift[1] - v.shift[0]) - rest),
                unit_distance_cost=v.cost_per_distance,
                unit_duration_cost=v.cost_per_time,
            )
        )
    data = pyvrp.ProblemData(
        locations=[pyvrp.Location(0, 0) for _ in range(len(locations))],
        clients=clients,
        depots=depots,
        vehicle_types=types,
        distance_matrices=[distance],  # type: ignore[list-item]
        duration_matrices=[duration],  # type: ignore[list-item]
    )
    return Data(data, list(jobs), list(kinds.values()))


def to_routes(data: Data, solution: pyvrp.Solution) -> list[RawRoute]:
    """PyVRP's routes as raw routes of the problem's vehicles (times to be redone)."""
    free = [list(members) for members in data.vehicles]
    routes = []
    for route in solution.routes():
        vehicle = free[route.vehicle_type()].pop(0)
        jobs, starts = [], []
        for activity in route.schedule():
            if activity.is_client():
                jobs.append(data.jobs[activity.idx])
                starts.append(activity.start_time)
        routes.append(RawRoute(vehicle, jobs, starts, route.start_time(), route.end_time(), []))
    return routes


def to_solution(data: Data, routes: Sequence[RawRoute]) -> pyvrp.Solution:
    """A warm start for PyVRP from raw routes of the problem's vehicles."""
    client = {job: k for k, job in enumerate(data.jobs)}
    kind = {v: t for t, members in enumerate(data.vehicles) for v in members}
    return pyvrp.Solution(
        data.data,
        [
            pyvrp.Route(data.data, [client[i] for i in r.jobs if i in client], kind[r.vehicle])
            for r in routes
            if any(i in client for i in r.jobs)
        ],
    )


Progress = Callable[[int], None]


class _Best(pyvrp.IteratedLocalSearchCallbacks):
    def __init__(self, report: Progress | None) -> None:
        self.report = report

    def on_best(self, best: pyvrp.Solution) -> None:
        if self.report is not None and best.is_feasible():
            self.report(objective(best))


def objective(solution: pyvrp.Solution) -> int:
    return int(
        solution.distance_cost()
        + solution.duration_cost()
        + solution.fixed_vehicle_cost()
        + solution.uncollected_prizes()
    )


def search(
    data: Data,
    deadline: float,
    seed: int = 0,
    initial: pyvrp.Solution | None = None,
    on_best: Progress | None = None,
) -> pyvrp.Solution:
    """PyVRP's iterated local search until `deadline` (monotonic clock)."""
    params = pyvrp.SolveParams(
        ils=pyvrp.IteratedLocalSearchParams(callbacks=_Best(on_best)),
        display_interval=math.inf,
    )
    seconds = max(0.0, deadline - time.monotonic())
    with warnings.catch_warnings():
        # When the fleet cannot serve every required job PyVRP says so as it searches;
        # the repair after the search leaves those jobs out with their reason.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = pyvrp.solve(
            data.data,
            stop=MaxRuntime(seconds),
            seed=seed,
            collect_stats=False,
            params=params,
            initial_solution=initial,
        )
    return result.best


def construct(data: Data) -> pyvrp.Solution:
    """A first complete plan in a fraction of a second: nearest-neighbour routes.

    Each route takes, again and again, the unplanned stop whose service can start
    soonest (ties to the nearer), among those its van can still carry, reach inside
    their window and come back from in time; a van whose route can take nothing more
    closes it and the next van starts. Vans go cheapest first per unit of their first
    capacity dimension. Stops no van took stay out (required ones make the plan
    infeasible, and the search then works on it). PyVRP's own start, a random plan
    improved by an exhaustive local search, takes seconds on a thousand stops.
    """
    d = data.data
    n, depots = d.num_clients, d.num_depots
    duration = d.duration_matrix(0)
    clients = d.clients()
    demand = np.array([c.delivery for c in clients], dtype=np.int64).reshape(n, -1)
    early = np.array([c.tw_early for c in clients], dtype=np.int64)
    late = np.array([c.tw_late for c in clients], dtype=np.int64)
    service = np.array([c.service_duration for c in clients], dtype=np.int64)
    left = np.ones(n, dtype=bool)
    vans = [(t, vt) for t, vt in enumerate(d.vehicle_types()) for _ in range(vt.num_available)]
    vans.sort(key=lambda tv: tv[1].fixed_cost / max(1, tv[1].capacity[0] if tv[1].capacity else 1))
    routes = []
    for t, vt in vans:
        if not left.any():
            break
        capacity = np.array(vt.capacity, dtype=np.int64)
        load = np.zeros_like(capacity)
        here, now, departure = vt.start_depot, vt.tw_early, None
        back = duration[depots:, vt.end_depot]
        visits: list[int] = []
        while True:
            go = duration[here, depots:]
            start = np.maximum(now + go, early)
            ok = (
                left
                & (start <= late)
                & np.all(load + demand <= capacity, axis=1)
                & (start + service + back <= vt.tw_late)
            )
            # The route leaves as late as its first stop allows.
            leave = np.maximum(vt.tw_early, start - go) if departure is None else departure
            ok &= start + service + back - leave <= vt.shift_duration
            if not ok.any():
                break
            candidates = np.flatnonzero(ok)
            k = int(candidates[np.lexsort((go[candidates], start[candidates]))[0]])
            visits.append(k)
            if departure is None:
                departure = int(np.asarray(leave)[k])
            left[k] = False
            load += demand[k]
            now = int(start[k] + service[k])
            here = depots + k
        if visits:
            routes.append(pyvrp.Route(d, visits, t))
    return pyvrp.Solution(d, routes)
