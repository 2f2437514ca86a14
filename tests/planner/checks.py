"""Independent checks of a planner `Solution` and small generated problems for the tests."""

from __future__ import annotations

import itertools
import math
import random

from services.planner.problem import Job, Problem, Solution, Vehicle


def grid_problem(
    n_jobs: int,
    vehicles: list[Vehicle],
    *,
    seed: int = 1,
    size: int = 1000,
    window: tuple[int, int] = (0, 10_000),
    window_width: int | None = None,
    service: int = 10,
    demand: tuple[int, ...] = (1,),
    drop_penalty: int | None = None,
    extra_points: int = 0,
) -> Problem:
    """Jobs at random points of a square; location 0 (and up to `extra_points` more) are
    depots. Distance is Euclidean rounded down; travel time equals distance."""
    rng = random.Random(seed)
    points = [(size // 2, size // 2)] + [
        (rng.randrange(size), rng.randrange(size)) for _ in range(extra_points + n_jobs)
    ]
    matrix = [[int(math.hypot(ax - bx, ay - by)) for bx, by in points] for ax, ay in points]
    jobs = []
    for k in range(n_jobs):
        if window_width is None:
            w = window
        else:
            open_ = rng.randrange(window[0], window[1] - window_width)
            w = (open_, open_ + window_width)
        jobs.append(Job(f"j{k}", 1 + extra_points + k, demand, w, service))
    return Problem(matrix, matrix, jobs, vehicles, drop_penalty)


def van(
    vid: str, capacity: tuple[int, ...] = (100,), shift: tuple[int, int] = (0, 10_000), **kw: object
) -> Vehicle:
    return Vehicle(id=vid, start=0, end=0, capacity=capacity, shift=shift, **kw)  # type: ignore[arg-type]


def assert_feasible(problem: Problem, solution: Solution) -> None:
    """Every job exactly once; windows, capacity, shifts, durations and breaks hold; the
    reported distances, times and costs agree with the matrices."""
    jobs = {j.id: j for j in problem.jobs}
    vehicles = {v.id: v for v in problem.vehicles}
    seen = [v.job_id for r in solution.routes for v in r.visits] + [
        u.job_id for u in solution.unassigned
    ]
    assert sorted(seen) == sorted(jobs), "every job must appear exactly once"
    assert len({r.vehicle_id for r in solution.routes}) == len(solution.routes)
    total_distance = total_cost = 0
    for route in solution.routes:
        v = vehicles[route.vehicle_id]
        assert route.visits
        for d, cap in enumerate(v.capacity):
            assert sum(jobs[x.job_id].demand[d] for x in route.visits) <= cap
        assert v.shift[0] <= route.departure and route.arrival <= v.shift[1]
        if v.max_duration is not None:
            assert route.arrival - route.departure <= v.max_duration
        locs = [v.start] + [jobs[x.job_id].location for x in route.visits] + [v.end]
        distance = sum(problem.distance[a][b] for a, b in itertools.pairwise(locs))
        assert route.distance == distance
        rests = sorted(route.breaks)
        assert len(rests) == len(v.breaks)
        for (start, end), rule in zip(rests, sorted(v.breaks, key=lambda b: b.window), strict=True):
            assert rule.window[0] <= start <= rule.window[1]
            assert end - start == rule.duration
        t = route.departure
        for k, visit in enumerate(route.visits):
            job = jobs[visit.job_id]
            travel = problem.duration[locs[k]][locs[k + 1]]
            resting = sum(e - s for s, e in rests if t <= s < visit.start)
            assert visit.arrival >= t + travel
            assert visit.start >= max(visit.arrival, job.window[0], t + travel + resting)
            assert visit.start <= job.window[1]
            assert visit.departure == visit.start + job.service
            for s, e in rests:  # no break during a service
                assert e <= visit.start or s >= visit.departure
            t = visit.departure
        assert route.arrival >= t + problem.duration[locs[-2]][locs[-1]]
        cost = (
            v.fixed_cost
            + v.cost_per_distance * route.distance
            + v.cost_per_time * (route.arrival - route.departure)
        )
        assert route.cost == cost
        total_distance += route.distance
        total_cost += route.cost
    assert solution.distance == total_distance
    penalty = problem.drop_penalty or 0
    assert solution.cost == total_cost + penalty * len(solution.unassigned)
