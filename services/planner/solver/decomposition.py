"""`solve`: the planner's search, from a first complete plan to the best it finds.

Every plan starts from a complete one built in a fraction of a second
(`construct`), then PyVRP's iterated local search improves it until the
deadline (`search`), on every core: with more than one, the other cores run
independent searches from the same start with other seeds and the cheapest plan wins.
Problems above `PIECES_ABOVE` jobs are cut into geographic pieces of about
`PIECE_SIZE` jobs with their share of the fleet, solved on all cores. Whatever the
search hands back is then made exactly feasible under the product's timing model, and
jobs it could not keep are placed again (`repair.make_feasible`). Jobs no van could
serve even alone are left out first with their reason (`validation`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyvrp

from services.planner.problem import Problem, Solution, SolveOptions, Unassigned
from services.planner.solver.engine import (
    Data,
    Progress,
    construct,
    kind,
    objective,
    route_cost,
    search,
    to_data,
    to_routes,
    to_solution,
)
from services.planner.solver.model import RawRoute, assemble
from services.planner.solver.repair import make_feasible, subproblem
from services.planner.solver.validation import (
    Matrices,
    feasible_vehicles,
    impossible_reason,
    validate,
)
from services.planner.solver.workers import cores, run_all

# Above this many jobs one search over the whole problem improves too slowly within a
# wave's budget (and its start alone takes seconds), so the problem is cut in pieces.
PIECES_ABOVE = 1500
PIECE_SIZE = 750

# From this many jobs the search also works on parts of the plan (`_improve_in_parts`),
# after searching the whole of it for `WHOLE_SHARE` of the time.
PARTS_FROM = 250
WHOLE_SHARE = 0.6
PART_SIZE = 200
PART_SECONDS = 0.8
_MIN_PART_SECONDS = 0.2

# PyVRP's own start (a random plan after an exhaustive local search) leads to plans as
# good as or better than the nearest-neighbour one, but takes up to about this long per
# job; the search starts from the nearest-neighbour plan when that would be more than
# `_START_SHARE` of the budget (on city days of 150 stops, the nearest-neighbour start
# cost up to 2.5% more on some instances). When every job must be served and those
# routes cannot take them all (tight windows, a small fleet), PyVRP's start is used.
_PYVRP_START_SECONDS_PER_JOB = 0.002
_START_SHARE = 0.1

# Seconds a child process needs to start, and to ship a problem there and a plan back.
_CHILD_OVERHEAD = 1.0


def _reserve(jobs: int) -> float:
    """Seconds kept back for making the plan exactly feasible and reading it out."""
    return 0.05 + 0.0002 * jobs


def solve(problem: Problem, options: SolveOptions | None = None) -> Solution:
    """Plan routes for `problem` within `options.time_limit` seconds of wall clock."""
    options = options or SolveOptions()
    deadline = time.monotonic() + options.time_limit
    m = validate(problem)
    allowed = feasible_vehicles(problem, m) if problem.jobs else np.zeros((0, 0), bool)
    left_out = [
        Unassigned(problem.jobs[i].id, impossible_reason(problem, i))
        for i in range(len(problem.jobs))
        if not allowed[i].any()
    ]
    servable = [i for i in range(len(problem.jobs)) if allowed[i].any()]
    routes: list[RawRoute] = []
    if servable:
        workers = max(1, options.workers or cores())
        until = deadline - _reserve(len(servable))
        if len(servable) > PIECES_ABOVE:
            routes = _solve_in_pieces(problem, m, servable, until, workers)
        else:
            routes = _search(problem, m, servable, until, workers, options)
        routes = make_feasible(problem, m, routes, servable)
    solution = assemble(problem, m, routes, left_out)
    if options.on_progress is not None:
        options.on_progress(sum(route.cost for route in solution.routes))
    return solution


def _search(
    problem: Problem,
    m: Matrices,
    jobs: Sequence[int],
    deadline: float,
    workers: int,
    options: SolveOptions,
) -> list[RawRoute]:
    """One search over `jobs` on every vehicle (`_improve`), and as many more with
    other seeds in child processes as there are other cores (when there is time to
    start them); the cheapest plan wins."""
    data = to_data(problem, m, jobs, optional=problem.drop_penalty is not None)
    start: pyvrp.Solution | None = None  # PyVRP's own
    if _PYVRP_START_SECONDS_PER_JOB * len(jobs) > _START_SHARE * (deadline - time.monotonic()):
        built = construct(data)
        if problem.drop_penalty is not None or built.is_complete():
            start = built
    others = workers - 1 if deadline - time.monotonic() > 2 * _CHILD_OVERHEAD else 0
    if others:
        with ThreadPoolExecutor(max_workers=1) as waiter:
            children = waiter.submit(
                run_all,
                _improve_child,
                [(problem, jobs, deadline, seed, start) for seed in range(1, others + 1)],
                others,
            )
            found = [_improve(problem, m, data, start, deadline, 0, options.on_progress)]
            found += children.result()
    else:
        found = [_improve(problem, m, data, start, deadline, 0, options.on_progress)]
    return min(found, key=lambda plan: plan[0])[1]


Ranked = tuple[tuple[bool, int], list[RawRoute]]  # ((infeasible, cost), routes)


def _improve(
    problem: Problem,
    m: Matrices,
    data: Data,
    start: pyvrp.Solution | None,
    deadline: float,
    seed: int,
    on_progress: Progress | None = None,
) -> Ranked:
    """Search the whole problem from `start`; on large problems only for a share of the
    time, and then on parts of the plan (`_improve_in_parts`)."""
    if data.data.num_clients < PARTS_FROM:
        best = search(data, deadline, seed, start, on_progress)
        return _rank(best), to_routes(data, best)
    split = time.monotonic() + WHOLE_SHARE * (deadline - time.monotonic())
    best = search(data, split, seed, start, on_progress)
    if not best.is_feasible():
        best = search(data, deadline, seed, best, on_progress)
        return _rank(best), to_routes(data, best)
    routes = _improve_in_parts(
        problem, m, to_routes(data, best), deadline, seed, route_cost(best), on_progress
    )
    final = to_solution(data, routes)  # timed by PyVRP again, for the departures
    return _rank(final), to_routes(data, final)


def _improve_child(
    problem: Problem, jobs: Sequence[int], deadline: float, seed: int, start: pyvrp.Solution | None
) -> Ranked:
    """Child-process entry point: one more search with another seed."""
    m = validate(problem)
    data = to_data(problem, m, jobs, optional=problem.drop_penalty is not None)
    return _improve(problem, m, data, start, deadline, seed)


def _rank(solution: pyvrp.Solution) -> tuple[bool, int]:
    return (not solution.is_feasible(), objective(solution))


def _improve_in_parts(
    problem: Problem,
    m: Matrices,
    plan: list[RawRoute],
    deadline: float,
    seed: int,
    cost: int = 0,
    on_progress: Progress | None = None,
) -> list[RawRoute]:
    """Search parts of the plan in turn, each a few neighbouring routes of about
    `PART_SIZE` jobs with their vans and an idle one of each kind, from the part's own
    routes for `PART_SECONDS`; a part's new routes replace the old when they cost less
    (and `on_progress` hears the plan's new cost, starting from `cost`).

    On a large plan every iteration of the search over the whole of it reads and
    writes the whole plan: on 1,000 stops it makes about 430 iterations a second where
    it makes 1,400 on 200. Parts give the same time several times the iterations, and
    the parts move: each is grown from the route visited least often so far.
    """
    routes = {r.vehicle: r.jobs for r in plan if r.jobs}
    visits = dict.fromkeys(routes, 0)
    rng = np.random.default_rng(seed)
    while deadline - time.monotonic() > _MIN_PART_SECONDS:
        group = _neighbouring_routes(problem, m, routes, visits, rng)
        for vehicle in group:
            visits[vehicle] += 1
        used = set(routes)
        spare = list({kind(problem.vehicles[k]): k for k in range(len(problem.vehicles))
                      if k not in used}.values())  # fmt: skip
        fleet = group + spare
        jobs = [i for vehicle in group for i in routes[vehicle]]
        piece = subproblem(problem, m, jobs, fleet)
        pdata = to_data(piece, validate(piece), range(len(jobs)), piece.drop_penalty is not None)
        at = {i: n for n, i in enumerate(jobs)}
        current = to_solution(
            pdata,
            [RawRoute(n, [at[i] for i in routes[v]], [], 0, 0, []) for n, v in enumerate(group)],
        )
        until = min(deadline, time.monotonic() + PART_SECONDS)
        found = search(pdata, until, int(rng.integers(1 << 30)), current)
        if not found.is_feasible() or objective(found) >= objective(current):
            continue
        cost -= route_cost(current) - route_cost(found)
        if on_progress is not None:
            on_progress(cost)
        for vehicle in group:
            del routes[vehicle]
        for r in to_routes(pdata, found):
            routes[fleet[r.vehicle]] = [jobs[i] for i in r.jobs]
            visits.setdefault(fleet[r.vehicle], visits[group[0]])
    return [RawRoute(v, jobs, [], 0, 0, []) for v, jobs in routes.items()]


def _neighbouring_routes(
    problem: Problem,
    m: Matrices,
    routes: dict[int, list[int]],
    visits: dict[int, int],
    rng: np.random.Generator,
) -> list[int]:
    """The route visited least often (ties at random) and the routes nearest to it
    until they hold about `PART_SIZE` jobs; a route's distance to the seed is the mean
    over the seed's jobs of the distance to the route's nearest job."""
    keys = list(routes)
    fewest = min(visits[k] for k in keys)
    seed = keys[int(rng.choice([n for n, k in enumerate(keys) if visits[k] == fewest]))]
    members = [routes[k] for k in keys]
    loc = np.array([problem.jobs[i].location for r in members for i in r], dtype=np.int64)
    mine = np.array([problem.jobs[i].location for i in routes[seed]], dtype=np.int64)
    between = m.distance[np.ix_(mine, loc)] + m.distance[np.ix_(loc, mine)].T
    bounds = np.cumsum([0] + [len(r) for r in members])[:-1]
    closeness = np.minimum.reduceat(between, bounds, axis=1).mean(axis=0)
    group, size = [], 0
    for n in np.argsort(closeness, kind="stable"):
        if size >= min(PART_SIZE, len(loc) // 2):
            break
        group.append(keys[int(n)])
        size += len(members[int(n)])
    return group


def _solve_in_pieces(
    problem: Problem, m: Matrices, jobs: list[int], deadline: float, workers: int
) -> list[RawRoute]:
    """Geographic pieces, each with its share of the fleet, searched on every core (each
    core takes a list of pieces and splits its time between them), then stitched."""
    clusters = _cluster(problem, m, jobs, max(1, math.ceil(len(jobs) / PIECE_SIZE)))
    fleets = _share_vehicles(problem, m, clusters)
    pieces = [
        (
            to_data(piece, validate(piece), range(len(piece.jobs)), piece.drop_penalty is not None),
            cluster,
            fleet,
        )
        for cluster, fleet in zip(clusters, fleets, strict=True)
        for piece in [subproblem(problem, m, cluster, fleet)]
    ]
    lanes = max(1, min(workers, len(pieces)))
    shares = [pieces[k::lanes] for k in range(lanes)]
    if lanes > 1 and deadline - time.monotonic() > 2 * _CHILD_OVERHEAD:
        solved = run_all(
            _search_pieces, [([d for d, _, _ in share], deadline) for share in shares], lanes
        )
    else:
        solved = [_search_pieces([d for d, _, _ in pieces], deadline)]
        shares = [pieces]
    routes = []
    for share, plans in zip(shares, solved, strict=True):
        for (data, cluster, fleet), plan in zip(share, plans, strict=True):
            for r in to_routes(data, plan):
                routes.append(
                    RawRoute(
                        fleet[r.vehicle],
                        [cluster[i] for i in r.jobs],
                        r.starts,
                        r.departure,
                        r.arrival,
                        [],
                    )
                )
    return routes


def _search_pieces(pieces: list[Data], deadline: float) -> list[pyvrp.Solution]:
    """Search each piece in turn, the time left shared equally among those still to go."""
    plans = []
    for k, data in enumerate(pieces):
        until = time.monotonic() + (deadline - time.monotonic()) / (len(pieces) - k)
        plans.append(search(data, until, 0, construct(data)))
    return plans


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
