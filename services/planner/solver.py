"""The planner's solver: a `Problem` in, a `Solution` out, with OR-Tools routing.

Pure computation: no database, no network. `solve` validates the input, leaves out jobs
that no vehicle could ever serve, builds an OR-Tools routing model over the rest and
searches for the cheapest plan inside the wall-clock budget (`solve_direct`: iterated
local search, with several starts when the plan has few long routes). Problems too large
for one model are split into geographic pieces solved in parallel worker processes, and
the plan then improved by re-solving groups of neighbouring routes (`solve_decomposed`).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from ortools.constraint_solver import (
    pywrapcp,
    routing_enums_pb2,
    routing_ils_pb2,
    routing_parameters_pb2,
)
from ortools.util import optional_boolean_pb2

from services.planner.problem import (
    Job,
    Problem,
    ProblemError,
    ProgressCallback,
    Route,
    Solution,
    SolveOptions,
    Unassigned,
    Vehicle,
    Visit,
)

TOO_LARGE = "TOO_LARGE"
WINDOW_UNREACHABLE = "WINDOW_UNREACHABLE"
NO_CAPACITY = "NO_CAPACITY"

# Above this many jobs one routing model searches too slowly (on 1000-customer
# benchmarks at 120 s: 37% above the best known with iterated local search, 60% with
# guided local search, 10% in pieces of 250), so the problem is cut into geographic
# pieces instead.
DECOMPOSE_ABOVE = 500


# Seconds kept back from OR-Tools, so the whole call stays inside its budget: OR-Tools
# overshoots its limit by a few milliseconds, and reading the plan out takes time in
# proportion to the jobs.
def _reserve(jobs: int) -> float:
    return 0.1 + 0.0005 * jobs


def solve(problem: Problem, options: SolveOptions | None = None) -> Solution:
    """Plan routes for `problem` within `options.time_limit` seconds of wall clock."""
    options = options or SolveOptions()
    deadline = time.monotonic() + options.time_limit
    matrices = validate(problem)
    if len(problem.jobs) > DECOMPOSE_ABOVE:
        return solve_decomposed(problem, options, deadline, matrices=matrices)
    return solve_direct(problem, matrices, deadline, options)


@dataclass(frozen=True)
class Matrices:
    """The problem's matrices as int64 arrays, checked once and shared by every step."""

    distance: np.ndarray
    duration: np.ndarray


def validate(problem: Problem) -> Matrices:
    """Raise `ProblemError` naming the first malformed job, vehicle or matrix."""
    if not problem.vehicles:
        raise ProblemError("the problem has no vehicles")
    distance = _square_matrix(problem.distance, "distance")
    duration = _square_matrix(problem.duration, "duration")
    size = distance.shape[0]
    if duration.shape[0] != size:
        raise ProblemError(
            f"distance matrix is {size}x{size} but duration matrix is "
            f"{duration.shape[0]}x{duration.shape[0]}"
        )
    dims = len(problem.vehicles[0].capacity)
    seen: set[str] = set()
    for v in problem.vehicles:
        if v.id in seen:
            raise ProblemError(f"vehicle {v.id}: duplicate id")
        seen.add(v.id)
        if len(v.capacity) != dims:
            raise ProblemError(
                f"vehicle {v.id}: {len(v.capacity)} capacity dimensions, expected {dims}"
            )
        if any(c < 0 for c in v.capacity):
            raise ProblemError(f"vehicle {v.id}: negative capacity {v.capacity}")
        for loc in (v.start, v.end):
            if not 0 <= loc < size:
                raise ProblemError(f"vehicle {v.id}: location {loc} outside the matrix")
        if v.shift[1] < v.shift[0]:
            raise ProblemError(f"vehicle {v.id}: shift ends before it starts {v.shift}")
        if v.max_duration is not None and v.max_duration < 0:
            raise ProblemError(f"vehicle {v.id}: negative max_duration")
        if min(v.fixed_cost, v.cost_per_distance, v.cost_per_time) < 0:
            raise ProblemError(f"vehicle {v.id}: negative cost")
        for b in v.breaks:
            if b.window[1] < b.window[0] or b.duration < 0:
                raise ProblemError(f"vehicle {v.id}: invalid break {b}")
    seen = set()
    for j in problem.jobs:
        if j.id in seen:
            raise ProblemError(f"job {j.id}: duplicate id")
        seen.add(j.id)
        if len(j.demand) != dims:
            raise ProblemError(
                f"job {j.id}: {len(j.demand)} demand dimensions, vehicles have {dims}"
            )
        if any(d < 0 for d in j.demand):
            raise ProblemError(f"job {j.id}: negative demand {j.demand}")
        if j.window[1] < j.window[0]:
            raise ProblemError(f"job {j.id}: window ends before it starts {j.window}")
        if j.service < 0:
            raise ProblemError(f"job {j.id}: negative service time")
        if not 0 <= j.location < size:
            raise ProblemError(f"job {j.id}: location {j.location} outside the matrix")
    if problem.drop_penalty is not None and problem.drop_penalty < 0:
        raise ProblemError("drop_penalty is negative")
    return Matrices(distance, duration)


def _square_matrix(rows: Sequence[Sequence[int]], name: str) -> np.ndarray:
    try:
        matrix = np.asarray(rows, dtype=np.int64)
    except (ValueError, TypeError) as exc:
        raise ProblemError(f"{name} matrix is not a square matrix of integers") from exc
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ProblemError(f"{name} matrix is not square: shape {matrix.shape}")
    if matrix.size and matrix.min() < 0:
        i, j = np.argwhere(matrix < 0)[0]
        raise ProblemError(f"{name} matrix has a negative entry at [{i}][{j}]")
    return matrix


def feasible_vehicles(problem: Problem, m: Matrices) -> np.ndarray:
    """Boolean jobs x vehicles: could this vehicle serve this job alone?

    Breaks are not considered: they rarely make a lone visit impossible, and the search
    still respects them.
    """
    jobs, vehicles = problem.jobs, problem.vehicles
    fits = _capacity_fits(jobs, vehicles)
    loc = np.array([j.location for j in jobs], dtype=np.int64)
    start = np.array([v.start for v in vehicles], dtype=np.int64)
    end = np.array([v.end for v in vehicles], dtype=np.int64)
    open_, close = (np.array([j.window[k] for j in jobs], dtype=np.int64)[:, None] for k in (0, 1))
    service = np.array([j.service for j in jobs], dtype=np.int64)[:, None]
    shift0 = np.array([v.shift[0] for v in vehicles], dtype=np.int64)[None, :]
    shift1 = np.array([v.shift[1] for v in vehicles], dtype=np.int64)[None, :]
    go = m.duration[np.ix_(start, loc)].T  # jobs x vehicles
    back = m.duration[np.ix_(loc, end)]
    begin = np.maximum(shift0 + go, open_)
    ok = fits & (begin <= close) & (begin + service + back <= shift1)
    longest = np.array(
        [
            v.max_duration if v.max_duration is not None else np.iinfo(np.int64).max
            for v in vehicles
        ],
        dtype=np.int64,
    )[None, :]
    return ok & (go + service + back <= longest)


def _capacity_fits(jobs: Sequence[Job], vehicles: Sequence[Vehicle]) -> np.ndarray:
    dims = len(vehicles[0].capacity)
    if dims == 0:
        return np.ones((len(jobs), len(vehicles)), dtype=bool)
    demand = np.array([j.demand for j in jobs], dtype=np.int64).reshape(len(jobs), dims)
    capacity = np.array([v.capacity for v in vehicles], dtype=np.int64)
    return np.all(demand[:, None, :] <= capacity[None, :, :], axis=2)


def impossible_reason(problem: Problem, job: int) -> str:
    """Why no vehicle can serve job `job` even alone (only call when that is so)."""
    if not _capacity_fits([problem.jobs[job]], problem.vehicles).any():
        return TOO_LARGE
    return WINDOW_UNREACHABLE


def solve_direct(problem: Problem, m: Matrices, deadline: float, options: SolveOptions) -> Solution:
    """Solve with iterated local search, leaving out the jobs nobody can serve: one start,
    or several (`LONG_ROUTE_STARTS`) when the first plan has few long routes."""
    allowed = feasible_vehicles(problem, m) if problem.jobs else np.zeros((0, 0), bool)
    servable = [i for i in range(len(problem.jobs)) if allowed[i].any()]
    left_out = [
        Unassigned(problem.jobs[i].id, impossible_reason(problem, i))
        for i in range(len(problem.jobs))
        if not allowed[i].any()
    ]
    best: Solution | None = None
    reported = [math.inf]

    def progress(cost: int) -> None:
        if options.on_progress is not None and cost < reported[0]:
            reported[0] = cost
            options.on_progress(cost)

    starts = [FIRST_SOLUTION]
    k = 0
    while k < len(starts):
        now = time.monotonic()
        until = now + (deadline - now) / (len(starts) - k)
        # Serving every job is cheaper to search with every job mandatory, but then the
        # model has no plan at all unless a first one is found; if none is, fall back to
        # a model where jobs may be left out at a prohibitive price.
        model = None
        first = None
        if problem.drop_penalty is None:
            model = _Model(problem, m, servable, allowed, mandatory=True)
            first = model.first_plan(until, starts[k])
            if first is None:
                model = None
        if model is None:
            model = _Model(problem, m, servable, allowed, mandatory=False)
        elif k == 0 and first is not None and first >= LONG_ROUTE_JOBS:
            if (deadline - time.monotonic()) / len(LONG_ROUTE_STARTS) >= (
                _START_SECONDS_PER_JOB * len(servable)
            ):
                starts = list(LONG_ROUTE_STARTS)
                until = now + (deadline - now) / len(starts)
            elif model.first_plan(until, _FS.SAVINGS) is not None:
                starts = [_FS.SAVINGS]
        routes = model.search(until, starts[k], progress)
        k += 1
        solution = assemble(problem, m, routes, left_out)
        if best is None or (len(solution.unassigned), solution.cost) < (
            len(best.unassigned),
            best.cost,
        ):
            best = solution
    assert best is not None
    return best


@dataclass(frozen=True)
class RawRoute:
    """A route as the search left it: job indices with the solver's times."""

    vehicle: int
    jobs: list[int]
    starts: list[int]  # service start per job
    departure: int
    arrival: int
    breaks: list[tuple[int, int]]


def assemble(
    problem: Problem, m: Matrices, routes: list[RawRoute], left_out: list[Unassigned]
) -> Solution:
    """Build the `Solution`; jobs in no route and not in `left_out` become NO_CAPACITY,
    so every job appears exactly once."""
    built: list[Route] = []
    placed: set[int] = set()
    for raw in routes:
        if raw.jobs:
            placed.update(raw.jobs)
            built.append(_route(problem, m, raw))
    known = {u.job_id for u in left_out}
    unassigned = list(left_out) + [
        Unassigned(j.id, NO_CAPACITY)
        for i, j in enumerate(problem.jobs)
        if i not in placed and j.id not in known
    ]
    return Solution(
        routes=tuple(built),
        unassigned=tuple(unassigned),
        distance=sum(r.distance for r in built),
        cost=sum(r.cost for r in built) + len(unassigned) * (problem.drop_penalty or 0),
    )


def _route(problem: Problem, m: Matrices, raw: RawRoute) -> Route:
    """Time and price a route.

    Without breaks the times are recomputed to come back as early as possible and then
    wait as little as possible; with breaks the solver's schedule is kept as it is.
    """
    vehicle = problem.vehicles[raw.vehicle]
    jobs = [problem.jobs[i] for i in raw.jobs]
    locs = [vehicle.start] + [j.location for j in jobs] + [vehicle.end]
    legs = list(itertools.pairwise(locs))
    distance = int(sum(m.distance[a, b] for a, b in legs))
    travel = [int(m.duration[a, b]) for a, b in legs]
    starts, departure, arrival = raw.starts, raw.departure, raw.arrival
    if not raw.breaks:
        tight = _tight_schedule(vehicle, jobs, travel)
        if vehicle.max_duration is None or tight[2] - tight[1] <= vehicle.max_duration:
            starts, departure, arrival = tight
    visits = []
    ready = departure
    for k, job in enumerate(jobs):
        resting = sum(e - s for s, e in raw.breaks if ready <= s < starts[k])
        visits.append(
            Visit(
                job.id,
                min(starts[k], ready + travel[k] + resting),
                starts[k],
                starts[k] + job.service,
            )
        )
        ready = starts[k] + job.service
    cost = (
        vehicle.fixed_cost
        + vehicle.cost_per_distance * distance
        + vehicle.cost_per_time * (arrival - departure)
    )
    return Route(vehicle.id, tuple(visits), departure, arrival, distance, cost, tuple(raw.breaks))


def _tight_schedule(
    vehicle: Vehicle, jobs: list[Job], travel: list[int]
) -> tuple[list[int], int, int]:
    """(service starts, departure, return) that return as early as possible, then leave
    as late as that allows: a forward pass for the earliest return, a backward pass for
    the latest starts that still make it, and a forward pass from the latest departure.
    """
    t = vehicle.shift[0]
    for k, job in enumerate(jobs):
        t = max(t + travel[k], job.window[0]) + job.service
    for k in range(len(jobs) - 1, -1, -1):  # t: the earliest end of the last service
        t = min(t - jobs[k].service, jobs[k].window[1]) - travel[k]
    departure = max(vehicle.shift[0], t)
    starts = []
    t = departure
    for k, job in enumerate(jobs):
        t = max(t + travel[k], job.window[0])
        starts.append(t)
        t += job.service
    return starts, departure, t + travel[-1]


_FS = routing_enums_pb2.FirstSolutionStrategy
FIRST_SOLUTION = _FS.PARALLEL_CHEAPEST_INSERTION

# Plans of few long routes (wide windows, long shifts) are where iterated local search
# from one start stalls: it rarely opens a route, so the number of routes its first
# plan has sticks. Those problems get independent starts from differently shaped first
# plans, the time split evenly and the cheapest plan kept (on the Solomon R2, RC2 and C2
# instances at 10 s: 1.5% mean gap against 3.4% for one start; on the short-route R1
# and RC1 instances three starts do worse, 3.1% against 2.4%, so they keep one). When
# there is too little time for several starts, the one start is from the savings plan,
# whose routes are shaped better for long routes than cheapest insertion's (R2/RC2 at
# 10 s, one start: 3.1% against 4.5%). Only when every job must be served: the first
# plan is probed anyway there, to know whether the mandatory model has one.
LONG_ROUTE_STARTS = (FIRST_SOLUTION, _FS.SAVINGS, _FS.PATH_CHEAPEST_ARC)
LONG_ROUTE_JOBS = 12  # jobs per route of the first plan from which routes count as long
# Each start needs time to get anywhere: seconds per job (100 jobs: 3 s).
_START_SECONDS_PER_JOB = 0.03

# Large-neighbourhood operators that rebuild whole paths by insertion: inside iterated
# local search each call costs more than the small moves it displaces (measured on the
# Solomon set; dropping the cross, chain and sub-trip operators too made it worse).
_SLOW_OPERATORS = (
    "use_global_cheapest_insertion_path_lns",
    "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns",
    "use_local_cheapest_insertion_visit_types_lns",
    "use_lin_kernighan",
)


def search_parameters(
    temperature: float, strategy: int = FIRST_SOLUTION
) -> routing_parameters_pb2.RoutingSearchParameters:
    """Iterated local search: ruin a few strings of nearby visits (SISR), re-insert them
    by cheapest insertion, descend to a local optimum, accept by simulated annealing
    cooling from `temperature` to a hundredth of it.

    On the Solomon set at 10 s this gives a third of the gap of guided local search
    (measured). OR-Tools' automatic temperatures are too cold to empty a route, which
    the clustered wide-window instances need.
    """
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = strategy
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
    for name in _SLOW_OPERATORS:
        setattr(params.local_search_operators, name, optional_boolean_pb2.BOOL_FALSE)
    params.use_iterated_local_search = True
    ils = params.iterated_local_search_parameters
    ils.perturbation_strategy = routing_ils_pb2.PerturbationStrategy.RUIN_AND_RECREATE
    ils.improve_perturbed_solution = True
    ruin = ils.ruin_recreate_parameters.ruin_strategies.add().sisr
    ruin.max_removed_sequence_size = 10
    ruin.avg_num_removed_visits = 10
    ruin.bypass_factor = 0.01
    annealing = ils.reference_solution_acceptance_strategy.simulated_annealing
    annealing.cooling_schedule_strategy = routing_ils_pb2.CoolingScheduleStrategy.EXPONENTIAL
    annealing.initial_temperature = temperature
    annealing.final_temperature = temperature / 100
    ils.best_solution_acceptance_strategy.greedy_descent.SetInParent()
    return params


def _temperature(problem: Problem, distance: np.ndarray, jobs: int) -> float:
    """A quarter of the mean arc cost between jobs: about 100 on the Solomon instances
    (tenths), where that start temperature was tuned, and in proportion elsewhere."""
    between = distance[:jobs, :jobs]
    mean_arc = float(between.mean()) if jobs > 1 else float(distance.mean() or 1)
    price = float(np.mean([v.cost_per_distance for v in problem.vehicles]))
    return max(1.0, mean_arc * price / 4)


class _Model:
    """One OR-Tools routing model over the servable jobs.

    Nodes are the servable jobs (0..n-1) followed by the distinct depot locations.
    """

    def __init__(
        self,
        problem: Problem,
        m: Matrices,
        servable: list[int],
        allowed: np.ndarray,
        mandatory: bool,
    ) -> None:
        self.problem = problem
        self.jobs = servable
        vehicles = problem.vehicles
        depots = sorted({v.start for v in vehicles} | {v.end for v in vehicles})
        depot_node = {loc: len(servable) + k for k, loc in enumerate(depots)}
        self.locations = np.array(
            [problem.jobs[i].location for i in servable] + depots, dtype=np.int64
        )
        n_nodes = len(self.locations)
        self.manager = pywrapcp.RoutingIndexManager(
            n_nodes,
            len(vehicles),
            [depot_node[v.start] for v in vehicles],
            [depot_node[v.end] for v in vehicles],
        )
        self.routing = pywrapcp.RoutingModel(self.manager)
        routing = self.routing
        loc = self.locations
        distance = m.distance[np.ix_(loc, loc)]
        self.temperature = _temperature(problem, distance, len(servable))
        service = np.array(
            [problem.jobs[i].service for i in servable] + [0] * len(depots), dtype=np.int64
        )
        travel_time = m.duration[np.ix_(loc, loc)] + service[:, None]

        # Arc costs: one matrix per distinct price per distance unit.
        by_price: dict[int, int] = {}
        for v_index, v in enumerate(vehicles):
            if v.cost_per_distance not in by_price:
                by_price[v.cost_per_distance] = routing.RegisterTransitMatrix(
                    (distance * v.cost_per_distance).tolist()
                )
            routing.SetArcCostEvaluatorOfVehicle(by_price[v.cost_per_distance], v_index)
            if v.fixed_cost:
                routing.SetFixedCostOfVehicle(v.fixed_cost, v_index)

        # Capacities: one dimension per demand dimension that anything uses.
        dims = len(vehicles[0].capacity)
        for d in range(dims):
            demand = [problem.jobs[i].demand[d] for i in servable] + [0] * len(depots)
            if not any(demand):
                continue
            callback = routing.RegisterUnaryTransitVector(demand)
            routing.AddDimensionWithVehicleCapacity(
                callback, 0, [v.capacity[d] for v in vehicles], True, f"capacity{d}"
            )

        # Time: transit = service at the origin + travel; waiting is slack.
        horizon = (
            int(
                max(
                    max(v.shift[1] for v in vehicles),
                    max((problem.jobs[i].window[1] for i in servable), default=0),
                )
            )
            + 1
        )
        time_callback = routing.RegisterTransitMatrix(travel_time.tolist())
        routing.AddDimension(time_callback, horizon, horizon, False, "time")
        self.time = routing.GetDimensionOrDie("time")
        for node, i in enumerate(servable):
            self.time.CumulVar(self.manager.NodeToIndex(node)).SetRange(*problem.jobs[i].window)
        self.breaks: list[list[pywrapcp.IntervalVar]] = []
        solver = routing.solver()
        visit_time = [int(service[self.manager.IndexToNode(idx)]) for idx in range(routing.Size())]
        for v_index, v in enumerate(vehicles):
            self.time.CumulVar(routing.Start(v_index)).SetRange(*v.shift)
            self.time.CumulVar(routing.End(v_index)).SetRange(*v.shift)
            if v.max_duration is not None:
                self.time.SetSpanUpperBoundForVehicle(v.max_duration, v_index)
            if v.cost_per_time:
                self.time.SetSpanCostCoefficientForVehicle(v.cost_per_time, v_index)
            intervals = [
                solver.FixedDurationIntervalVar(
                    b.window[0], b.window[1], b.duration, False, f"break {v.id} {k}"
                )
                for k, b in enumerate(v.breaks)
            ]
            self.breaks.append(intervals)
            if intervals:
                self.time.SetBreakIntervalsOfVehicle(intervals, v_index, visit_time)

        # Unless `mandatory`, every job may be left out; when the caller demands all, the
        # price of leaving one out dwarfs any route, so the search only does it when it
        # has to.
        penalty = problem.drop_penalty
        if penalty is None:
            penalty = _mandatory_penalty(problem, distance, horizon)
        all_vehicles = len(vehicles)
        for node, i in enumerate(servable):
            index = self.manager.NodeToIndex(node)
            if not mandatory:
                routing.AddDisjunction([index], penalty)
            can = [int(x) for x in np.flatnonzero(allowed[i])]
            if len(can) < all_vehicles:
                routing.VehicleVar(index).SetValues(can if mandatory else [-1, *can])

    def first_plan(self, deadline: float, strategy: int) -> float | None:
        """Jobs per used route in the first-solution heuristic's plan, or None when it
        finds no plan trying for at most a third of the remaining time."""
        params = search_parameters(self.temperature, strategy)
        params.solution_limit = 1
        remaining = (deadline - time.monotonic() - _reserve(len(self.jobs))) / 3
        params.time_limit.FromMilliseconds(max(1, int(remaining * 1000)))
        routing = self.routing
        plan = routing.SolveWithParameters(params)
        if plan is None:
            return None
        used = [
            v
            for v in range(routing.vehicles())
            if not routing.IsEnd(plan.Value(routing.NextVar(routing.Start(v))))
        ]
        served = sum(
            1
            for node in range(len(self.jobs))
            if plan.Value(routing.ActiveVar(self.manager.NodeToIndex(node)))
        )
        return served / max(1, len(used))

    def search(
        self, deadline: float, strategy: int, on_progress: ProgressCallback
    ) -> list[RawRoute]:
        """Improve until the deadline; return one raw route per vehicle (maybe empty), or
        none when no plan was found."""
        routing = self.routing
        params = search_parameters(self.temperature, strategy)
        remaining = deadline - time.monotonic() - _reserve(len(self.jobs))
        params.time_limit.FromMilliseconds(max(1, int(remaining * 1000)))
        best = [math.inf]

        def improved() -> None:
            # Iterated local search reports sub-search solutions whose cost is not bound.
            if not routing.CostVar().Bound():
                return
            cost = routing.CostVar().Value()
            if cost < best[0]:
                best[0] = cost
                on_progress(int(cost))

        routing.AddAtSolutionCallback(improved)
        solution = routing.SolveWithIteratedLocalSearch(params)
        if solution is None:
            return []
        on_progress(int(solution.ObjectiveValue()))
        return self._read(solution)

    def descend(self, routes: list[RawRoute], deadline: float) -> list[RawRoute] | None:
        """The local optimum that local search reaches from a given plan (OR-Tools'
        iterated local search cannot start from one), or None when the model does not
        accept the plan."""
        routing, manager = self.routing, self.manager
        params = search_parameters(self.temperature)
        params.use_iterated_local_search = False
        remaining = deadline - time.monotonic() - _reserve(len(self.jobs))
        params.time_limit.FromMilliseconds(max(1, int(remaining * 1000)))
        routing.CloseModelWithParameters(params)
        node = {job: n for n, job in enumerate(self.jobs)}
        paths: list[list[int]] = [[] for _ in range(routing.vehicles())]
        for r in routes:
            paths[r.vehicle] = [manager.NodeToIndex(node[i]) for i in r.jobs]
        start = routing.ReadAssignmentFromRoutes(paths, True)
        if start is None:
            return None
        solution = routing.SolveFromAssignmentWithParameters(start, params)
        return None if solution is None else self._read(solution)

    def _read(self, solution: pywrapcp.Assignment) -> list[RawRoute]:
        routing, manager = self.routing, self.manager
        taken: dict[str, tuple[int, int]] = {}
        intervals = solution.IntervalVarContainer()
        for k in range(intervals.Size()):
            element = intervals.Element(k)
            if element.PerformedValue():
                taken[element.Var().Name()] = (element.StartValue(), element.EndValue())
        routes = []
        for v_index in range(routing.vehicles()):
            jobs, starts = [], []
            index = solution.Value(routing.NextVar(routing.Start(v_index)))
            while not routing.IsEnd(index):
                jobs.append(self.jobs[manager.IndexToNode(index)])
                starts.append(solution.Value(self.time.CumulVar(index)))
                index = solution.Value(routing.NextVar(index))
            breaks = sorted(taken[b.Name()] for b in self.breaks[v_index] if b.Name() in taken)
            routes.append(
                RawRoute(
                    v_index,
                    jobs,
                    starts,
                    solution.Value(self.time.CumulVar(routing.Start(v_index))),
                    solution.Value(self.time.CumulVar(routing.End(v_index))),
                    breaks,
                )
            )
        return routes


def _mandatory_penalty(problem: Problem, distance: np.ndarray, horizon: int) -> int:
    """A price for leaving a job out that exceeds what serving it could ever add."""
    worst_arc = int(distance.max()) if distance.size else 0
    worst = max(
        v.fixed_cost + v.cost_per_distance * 2 * worst_arc + v.cost_per_time * horizon
        for v in problem.vehicles
    )
    return min(100 * (worst + 1), 2**62 // max(1, len(problem.jobs)))


# --- Very large problems: geographic pieces solved in parallel -----------------------

# Jobs per piece: small enough for iterated local search to do well in seconds.
PIECE_SIZE = 250

# Share of the budget given to the geographic pieces when there is time to improve their
# plan afterwards by re-solving groups of neighbouring routes (`_improve_route_groups`);
# with less time the pieces get nearly all of it, the rest kept for re-planning the jobs
# the pieces could not place with the vehicles they did not use. Where a piece's first
# plan has long routes (`LONG_ROUTE_JOBS`), a 250-job piece is about as good after 12 s
# as after 35 s while the route groups keep finding gains to the end, so the pieces get
# less. On the 1000-customer instances at 120 s (2 cores shared with other benchmarks),
# 60% for the pieces: C2 9.6%, R2 10.0 to 10.5% above the best known; 30%: C2 3.7%,
# R2 6.9 to 9.3%, but R1 7.1% and RC1 7.9% (60%: 5.3 to 5.7% and 6.6%).
_PIECES_SHARE = 0.6
_PIECES_SHARE_LONG_ROUTES = 0.3
_MIN_PIECE_SECONDS = 10.0  # per piece, before any time goes to route groups
_PIECES_SHARE_ALONE = 0.9

# Route groups: about this many jobs each, re-solved for rounds of about this many
# seconds: the remaining time is cut into whole rounds of at least that length, so
# none is left over, and none of less than the minimum is started.
GROUP_SIZE = 120
_ROUND_SECONDS = 8.0
_MIN_ROUND_SECONDS = 5.0

# Descent sweeps: local search from the plan itself over groups of about this many jobs,
# for at most this share of a round. On a 1000-customer R2 plan after all its rounds of
# route groups, one descent over the whole plan still took 1.4% off its distance (4 s),
# over two groups of 500 1.3% (under a second each), over four of 250 only 0.8%.
SWEEP_SIZE = 500
_SWEEP_SHARE = 0.25

# Seconds within which the probe for long routes gives up (it tries for a third).
_PROBE_SECONDS = 3.0

# Seconds a worker process needs to start and to ship its piece back and forth.
_WORKER_OVERHEAD = 0.5


def solve_decomposed(
    problem: Problem,
    options: SolveOptions | None = None,
    deadline: float | None = None,
    *,
    piece_size: int = PIECE_SIZE,
    matrices: Matrices | None = None,
) -> Solution:
    """Solve a problem too large for one model by cutting it into pieces.

    First geographic pieces: jobs are clustered around medoids of the distance matrix
    (no coordinates needed), vehicles are shared out in proportion to each piece's work,
    the pieces are solved in parallel worker processes and their routes stitched back
    together; jobs a piece could not place are planned once more with the vehicles no
    piece used. Then, while time remains, groups of neighbouring routes of that plan are
    re-solved in parallel and a group's new routes kept when they cost less.
    """
    options = options or SolveOptions()
    if deadline is None:
        deadline = time.monotonic() + options.time_limit
    m = matrices or validate(problem)
    allowed = feasible_vehicles(problem, m) if problem.jobs else np.zeros((0, 0), bool)
    left_out = [
        Unassigned(problem.jobs[i].id, impossible_reason(problem, i))
        for i in range(len(problem.jobs))
        if not allowed[i].any()
    ]
    servable = [i for i in range(len(problem.jobs)) if allowed[i].any()]
    n_pieces = max(1, math.ceil(len(servable) / piece_size))
    clusters = _cluster(problem, m, servable, n_pieces)
    fleets = _share_vehicles(problem, m, clusters)

    workers = max(1, min(options.workers or os.cpu_count() or 1, len(clusters)))
    waves = math.ceil(len(clusters) / workers)
    pieces = [
        _subproblem(problem, m, jobs, fleet) for jobs, fleet in zip(clusters, fleets, strict=True)
    ]
    budget = deadline - time.monotonic()
    room_for_groups = budget * (1 - _PIECES_SHARE_LONG_ROUTES) >= 2 * _MIN_ROUND_SECONDS
    long_routes = room_for_groups and _has_long_routes(pieces[0])
    share = _PIECES_SHARE_LONG_ROUTES if long_routes else _PIECES_SHARE
    pieces_time = max(budget * share, waves * _MIN_PIECE_SECONDS)
    improve = budget - pieces_time >= 2 * _MIN_ROUND_SECONDS
    if not improve:
        pieces_time = budget * _PIECES_SHARE_ALONE
    piece_limit = max(0.1, pieces_time / waves - _WORKER_OVERHEAD)
    job_index = {j.id: i for i, j in enumerate(problem.jobs)}
    vehicle_index = {v.id: k for k, v in enumerate(problem.vehicles)}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        solved = list(pool.map(_solve_piece, pieces, [piece_limit] * len(pieces)))
        raw = [
            _raw_from_route(r, job_index, vehicle_index) for piece in solved for r in piece.routes
        ]
        placed = {i for r in raw for i in r.jobs}
        missing = [i for i in servable if i not in placed]
        used = {r.vehicle for r in raw}
        idle = [k for k in range(len(problem.vehicles)) if k not in used]
        if missing and idle:
            repair = _subproblem(problem, m, missing, idle)
            fixed = solve_direct(
                repair, validate(repair), deadline, replace(options, on_progress=None)
            )
            raw += [_raw_from_route(r, job_index, vehicle_index) for r in fixed.routes]
        if improve:
            raw = _improve_route_groups(problem, m, raw, deadline, pool, workers)
    solution = assemble(problem, m, raw, left_out)
    if options.on_progress is not None:
        options.on_progress(solution.cost)
    return solution


def _has_long_routes(piece: Problem) -> bool:
    """Whether the first-solution heuristic's plan for `piece` has long routes (a tenth
    of a second for 250 jobs)."""
    m = validate(piece)
    allowed = feasible_vehicles(piece, m)
    servable = [i for i in range(len(piece.jobs)) if allowed[i].any()]
    model = _Model(piece, m, servable, allowed, mandatory=False)
    per_route = model.first_plan(time.monotonic() + _PROBE_SECONDS, FIRST_SOLUTION)
    return per_route is not None and per_route >= LONG_ROUTE_JOBS


def _improve_route_groups(
    problem: Problem,
    m: Matrices,
    raw: list[RawRoute],
    deadline: float,
    pool: ProcessPoolExecutor,
    workers: int,
) -> list[RawRoute]:
    """Re-solve groups of neighbouring routes (`_resolve_group`), one group per worker
    at a time, keeping a group's new routes whenever they serve its jobs for less.

    Geographic pieces cut long routes apart; groups of whole routes are the natural
    pieces of a plan, and every round regroups them around the routes that have been
    re-solved least often, so the boundaries move. Each round starts, and the last one
    ends, with a descent sweep: local search from the plan over a few large groups
    covering all of it (`SWEEP_SIZE`), for the moves between routes that the small
    groups never hold together.
    """
    routes = {r.vehicle: r for r in raw if r.jobs}
    visited = dict.fromkeys(routes, 0)
    job_index = {j.id: i for i, j in enumerate(problem.jobs)}
    vehicle_index = {v.id: k for k, v in enumerate(problem.vehicles)}
    reserve = _reserve(len(job_index))

    def improve(
        entry: _GroupEntry, groups: list[list[int]], spare: list[int], limit: float
    ) -> None:
        pieces, current = [], []
        for g, group in enumerate(groups):
            jobs = [i for k in group for i in routes[k].jobs]
            pieces.append(_subproblem(problem, m, jobs, group + spare[g : g + 1]))
            at = {i: n for n, i in enumerate(jobs)}
            current.append(
                [
                    replace(routes[k], vehicle=n, jobs=[at[i] for i in routes[k].jobs])
                    for n, k in enumerate(group)
                ]
            )
        solved = pool.map(entry, pieces, current, [limit] * len(pieces))
        for group, solution in zip(groups, solved, strict=True):
            before = sum(_route(problem, m, routes[k]).cost for k in group)
            if solution.unassigned or solution.cost >= before:
                continue
            for k in group:
                del routes[k]
            for r in solution.routes:
                new = _raw_from_route(r, job_index, vehicle_index)
                routes[new.vehicle] = new
                visited.setdefault(new.vehicle, visited[group[0]])

    def sweep(until: float) -> None:
        n_groups = math.ceil(sum(len(r.jobs) for r in routes.values()) / SWEEP_SIZE)
        limit = (until - time.monotonic()) / math.ceil(n_groups / workers) - _WORKER_OVERHEAD
        if limit > 0:
            groups = _route_groups(problem, m, routes, visited, n_groups, SWEEP_SIZE)
            improve(_descend_group, groups, [], limit)

    swept = 0.0  # seconds the last sweep took, kept back for the final one
    while True:
        began = time.monotonic()
        remaining = deadline - began - reserve - swept
        limit = remaining / max(1, math.floor(remaining / _ROUND_SECONDS))
        if limit < _MIN_ROUND_SECONDS:
            break
        sweep(began + limit * _SWEEP_SHARE)
        swept = time.monotonic() - began
        groups = _route_groups(problem, m, routes, visited, workers)
        for k in itertools.chain.from_iterable(groups):
            visited[k] += 1
        used = set(routes)
        spare = [k for k in range(len(problem.vehicles)) if k not in used]
        improve(_resolve_group, groups, spare, began + limit - time.monotonic() - _WORKER_OVERHEAD)
    sweep(deadline - reserve)
    return list(routes.values())


def _route_groups(
    problem: Problem,
    m: Matrices,
    routes: dict[int, RawRoute],
    visited: dict[int, int],
    n_groups: int,
    size: int = GROUP_SIZE,
) -> list[list[int]]:
    """Up to `n_groups` disjoint groups of about `size` jobs: each grows from the
    route re-solved least often by adding the routes closest to it, a route's distance
    to another being the mean over its jobs of the distance to the other's nearest job.
    """
    keys = list(routes)
    members = [routes[k].jobs for k in keys]
    loc = np.array([problem.jobs[i].location for r in members for i in r], dtype=np.int64)
    between = m.distance[np.ix_(loc, loc)] + m.distance[np.ix_(loc, loc)].T
    bounds = np.cumsum([0] + [len(r) for r in members])
    nearest = np.stack(
        [between[:, a:b].min(axis=1) for a, b in itertools.pairwise(bounds)], axis=1
    )  # jobs x routes
    closeness = np.stack(
        [nearest[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)]
    )  # routes x routes
    free = set(range(len(keys)))
    groups: list[list[int]] = []
    while free and len(groups) < n_groups:
        seed = min(free, key=lambda r: (visited[keys[r]], r))
        group, jobs = [], 0
        for r in np.argsort(closeness[seed]):
            if int(r) in free and jobs < size:
                group.append(int(r))
                jobs += len(members[r])
        free -= set(group)
        groups.append([keys[r] for r in group])
    return groups


def _solve_piece(piece: Problem, time_limit: float) -> Solution:
    """Worker-process entry point (module level so that it pickles)."""
    return solve(piece, SolveOptions(time_limit=time_limit))


_GroupEntry = Callable[[Problem, list[RawRoute], float], Solution]


def _descend_group(piece: Problem, current: list[RawRoute], time_limit: float) -> Solution:
    """Worker-process entry point: the local optimum that local search reaches from the
    routes `current` (in the piece's indices), or those routes if it cannot start."""
    deadline = time.monotonic() + time_limit
    return _descend(piece, validate(piece), current, deadline)


def _descend(piece: Problem, m: Matrices, current: list[RawRoute], deadline: float) -> Solution:
    everyone = list(range(len(piece.jobs)))
    model = _Model(
        piece, m, everyone, feasible_vehicles(piece, m), mandatory=piece.drop_penalty is None
    )
    return assemble(piece, m, model.descend(current, deadline) or current, [])


def _resolve_group(piece: Problem, current: list[RawRoute], time_limit: float) -> Solution:
    """Worker-process entry point for a route group: the cheaper of its routes
    `current` (in the piece's indices) after local search, and a plan re-solved from
    scratch in the rest of the time.

    From scratch the search can cut the group's routes differently, but late in the
    search it mostly ends up worse than the plan it would replace; local search from the
    plan itself takes a fraction of a second and still finds moves between routes that
    were never in one group before (1000-customer R2: 0.1 to 2% of a group's distance
    where a fresh search found nothing).
    """
    deadline = time.monotonic() + time_limit
    m = validate(piece)  # once, for both searches
    kept = _descend(piece, m, current, deadline)
    fresh = solve_direct(piece, m, max(deadline, time.monotonic() + 0.1), SolveOptions())
    if (len(fresh.unassigned), fresh.cost) < (len(kept.unassigned), kept.cost):
        return fresh
    return kept


def _raw_from_route(
    route: Route, job_index: dict[str, int], vehicle_index: dict[str, int]
) -> RawRoute:
    return RawRoute(
        vehicle_index[route.vehicle_id],
        [job_index[v.job_id] for v in route.visits],
        [v.start for v in route.visits],
        route.departure,
        route.arrival,
        list(route.breaks),
    )


def _subproblem(problem: Problem, m: Matrices, jobs: list[int], fleet: list[int]) -> Problem:
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
        distance=m.distance[cut].tolist(),
        duration=m.duration[cut].tolist(),
        jobs=[replace(problem.jobs[i], location=at[problem.jobs[i].location]) for i in jobs],
        vehicles=[replace(v, start=at[v.start], end=at[v.end]) for v in vehicles],
        drop_penalty=problem.drop_penalty,
    )


def _cluster(problem: Problem, m: Matrices, jobs: list[int], k: int) -> list[list[int]]:
    """Split jobs into k compact groups of similar size (balanced k-medoids).

    Seeds are spread out by farthest-point sampling; a few rounds then assign every job
    to its nearest medoid that still has room (most constrained jobs first) and move each
    medoid to the member closest to the rest of its group.
    """
    if k == 1:
        return [list(jobs)]
    loc = np.array([problem.jobs[i].location for i in jobs], dtype=np.int64)

    def between(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return m.distance[np.ix_(rows, cols)] + m.distance[np.ix_(cols, rows)].T

    depot = problem.vehicles[0].start
    seeds = [int(np.argmax(between(loc, np.array([depot]))[:, 0]))]
    nearest = between(loc, loc[seeds])[:, 0]
    while len(seeds) < k:
        seeds.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, between(loc, loc[seeds[-1:]])[:, 0])

    room = math.ceil(len(jobs) / k * 1.1)
    medoids = np.array(seeds)
    members: list[np.ndarray] = []
    for _ in range(4):
        d = between(loc, loc[medoids])  # jobs x k
        order = np.sort(d, axis=1)
        regret = order[:, 1] - order[:, 0]
        size = np.zeros(k, dtype=np.int64)
        owner = np.empty(len(jobs), dtype=np.int64)
        for j in np.argsort(-regret):
            for c in np.argsort(d[j]):
                if size[c] < room:
                    owner[j] = c
                    size[c] += 1
                    break
        members = [np.flatnonzero(owner == c) for c in range(k)]
        medoids = np.array(
            [
                g[int(np.argmin(between(loc[g], loc[g]).sum(axis=1)))] if len(g) else medoids[c]
                for c, g in enumerate(members)
            ]
        )
    return [[jobs[j] for j in g] for g in members if len(g)]


def _share_vehicles(problem: Problem, m: Matrices, clusters: list[list[int]]) -> list[list[int]]:
    """Give each piece vehicles in proportion to its work (jobs, service time, and each
    capacity dimension, whichever share is largest), near its jobs where depots differ,
    with large and small vehicles mixed across pieces."""
    n_vehicles = len(problem.vehicles)
    dims = len(problem.vehicles[0].capacity)
    work = np.array(
        [
            [len(c), sum(problem.jobs[i].service for i in c) + 1]
            + [sum(problem.jobs[i].demand[d] for i in c) for d in range(dims)]
            for c in clusters
        ],
        dtype=float,
    )
    totals = work.sum(axis=0)
    share = (work / np.where(totals > 0, totals, 1)).max(axis=1)
    quota = share / share.sum() * n_vehicles
    counts = np.floor(quota).astype(int)
    counts = np.maximum(counts, 1 if n_vehicles >= len(clusters) else 0)
    while counts.sum() > n_vehicles:
        counts[int(np.argmax(counts - quota))] -= 1
    while counts.sum() < n_vehicles:
        counts[int(np.argmax(quota - counts))] += 1

    centre = [problem.jobs[c[len(c) // 2]].location for c in clusters]
    free = sorted(range(n_vehicles), key=lambda k: [-x for x in problem.vehicles[k].capacity])
    fleets: list[list[int]] = [[] for _ in clusters]
    while free:
        c = int(np.argmax([counts[c] - len(fleets[c]) for c in range(len(clusters))]))
        k = min(
            free,
            key=lambda k: (
                m.distance[problem.vehicles[k].start, centre[c]]
                + m.distance[centre[c], problem.vehicles[k].end]
            ),
        )
        fleets[c].append(k)
        free.remove(k)
    return fleets
