"""One OR-Tools routing model over a problem, searched by iterated local search.

`solve_direct` builds the model (`Model`) over the jobs some vehicle can serve and
searches it inside the wall-clock budget: one start, or several when the plan has few
long routes. `assemble` reads the search's raw routes back into a `Solution`, timing
and pricing each route (`timed_route`).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import (
    pywrapcp,
    routing_enums_pb2,
    routing_ils_pb2,
    routing_parameters_pb2,
)
from ortools.util import optional_boolean_pb2

from services.planner.insertion import schedule
from services.planner.problem import (
    Job,
    Problem,
    ProgressCallback,
    Route,
    Solution,
    SolveOptions,
    Unassigned,
    Vehicle,
    Visit,
)
from services.planner.solver.validation import Matrices, feasible_vehicles, impossible_reason

NO_CAPACITY = "NO_CAPACITY"


# Seconds kept back from OR-Tools, so the whole call stays inside its budget: OR-Tools
# overshoots its limit by a few milliseconds, and reading the plan out takes time in
# proportion to the jobs.
def reserve_seconds(jobs: int) -> float:
    return 0.1 + 0.0005 * jobs


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
            model = Model(problem, m, servable, allowed, mandatory=True)
            first = model.first_plan(until, starts[k])
            if first is None:
                model = None
        if model is None:
            model = Model(problem, m, servable, allowed, mandatory=False)
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
            built.append(timed_route(problem, m, raw))
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


def timed_route(problem: Problem, m: Matrices, raw: RawRoute) -> Route:
    """Time and price a route.

    A van with a break is timed by the product's timing model (`insertion.schedule`:
    leave when the search had it leave, or else as late as the first stop allows, serve
    each stop as early as possible, the break where it fits best), the same model late
    bookings are inserted with; if that finds no schedule the search's own is kept.
    Without breaks the times are recomputed to come back as early as possible and then
    wait as little as possible.
    """
    vehicle = problem.vehicles[raw.vehicle]
    jobs = [problem.jobs[i] for i in raw.jobs]
    locs = [vehicle.start] + [j.location for j in jobs] + [vehicle.end]
    legs = list(itertools.pairwise(locs))
    distance = int(sum(m.distance[a, b] for a, b in legs))
    travel = [int(m.duration[a, b]) for a, b in legs]
    starts, departure, arrival, breaks = raw.starts, raw.departure, raw.arrival, raw.breaks
    if vehicle.breaks:
        timed = schedule(m.distance, m.duration, vehicle, jobs, raw.departure) or schedule(
            m.distance, m.duration, vehicle, jobs
        )
        if timed is not None:
            starts, departure, arrival = list(timed.starts), timed.departure, timed.arrival
            breaks = list(timed.breaks)
    else:
        tight = _tight_schedule(vehicle, jobs, travel)
        if vehicle.max_duration is None or tight[2] - tight[1] <= vehicle.max_duration:
            starts, departure, arrival = tight
    visits = []
    ready = departure
    for k, job in enumerate(jobs):
        resting = sum(e - s for s, e in breaks if ready <= s < starts[k])
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
    return Route(vehicle.id, tuple(visits), departure, arrival, distance, cost, tuple(breaks))


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


class Model:
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
        remaining = (deadline - time.monotonic() - reserve_seconds(len(self.jobs))) / 3
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
        remaining = deadline - time.monotonic() - reserve_seconds(len(self.jobs))
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
        remaining = deadline - time.monotonic() - reserve_seconds(len(self.jobs))
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
