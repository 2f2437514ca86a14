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

import numpy as np
import pyvrp

from services.planner.problem import Problem, Solution, SolveOptions, Unassigned
from services.planner.solver.engine import (
    Data,
    construct,
    objective,
    search,
    to_data,
    to_routes,
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
        options.on_progress(solution.cost)
    return solution


def _search(
    problem: Problem,
    m: Matrices,
    jobs: Sequence[int],
    deadline: float,
    workers: int,
    options: SolveOptions,
) -> list[RawRoute]:
    """One search over `jobs` on every vehicle, and as many more with other seeds in
    child processes as there are other cores (when there is time to start them)."""
    data = to_data(problem, m, jobs, optional=problem.drop_penalty is not None)
    start = construct(data)
    others = workers - 1 if deadline - time.monotonic() > 2 * _CHILD_OVERHEAD else 0
    if others:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as waiter:
            children = waiter.submit(
                run_all,
                _search_child,
                [(data, deadline, seed, start) for seed in range(1, others + 1)],
                others,
            )
            found = [search(data, deadline, 0, start, options.on_progress)]
            found += children.result()
    else:
        found = [search(data, deadline, 0, start, options.on_progress)]
    best = min(found, key=_rank)
    return to_routes(data, best)


def _rank(solution: pyvrp.Solution) -> tuple[bool, int]:
    return (not solution.is_feasible(), objective(solution))


def _search_child(data: Data, deadline: float, seed: int, start: pyvrp.Solution) -> pyvrp.Solution:
    """Child-process entry point: one more search with another seed."""
    return search(data, deadline, seed, start)


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
