"""`solve`, and what it does with problems too large for one routing model.

Up to `DECOMPOSE_ABOVE` jobs a problem is solved by one model (`model.solve_direct`).
Above it, `solve_decomposed` cuts it into geographic pieces solved in parallel worker
processes, then improves the plan by re-solving groups of neighbouring routes. The
pieces are solved by `solve` again, which is why it lives here.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from services.planner.problem import Problem, Route, Solution, SolveOptions, Unassigned
from services.planner.solver.model import (
    FIRST_SOLUTION,
    LONG_ROUTE_JOBS,
    Model,
    RawRoute,
    assemble,
    reserve_seconds,
    solve_direct,
    timed_route,
)
from services.planner.solver.validation import (
    Matrices,
    feasible_vehicles,
    impossible_reason,
    validate,
)

# Above this many jobs one routing model searches too slowly (on 1000-customer
# benchmarks at 120 s: 37% above the best known with iterated local search, 60% with
# guided local search, 10% in pieces of 250), so the problem is cut into geographic
# pieces instead.
DECOMPOSE_ABOVE = 500


def solve(problem: Problem, options: SolveOptions | None = None) -> Solution:
    """Plan routes for `problem` within `options.time_limit` seconds of wall clock."""
    options = options or SolveOptions()
    deadline = time.monotonic() + options.time_limit
    matrices = validate(problem)
    if len(problem.jobs) > DECOMPOSE_ABOVE:
        return solve_decomposed(problem, options, deadline, matrices=matrices)
    return solve_direct(problem, matrices, deadline, options)


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
    model = Model(piece, m, servable, allowed, mandatory=False)
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
    reserve = reserve_seconds(len(job_index))

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
            before = sum(timed_route(problem, m, routes[k]).cost for k in group)
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
    model = Model(
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
