"""The solver's first step: checking a `Problem` and finding what no vehicle can serve.

`validate` raises `ProblemError` naming the first malformed job, vehicle or matrix and
hands back the matrices as arrays (`Matrices`), checked once and shared by every later
step; `feasible_vehicles` tells which vehicle could serve which job alone, and
`impossible_reason` why a job that none can serve is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.planner.problem import Job, Problem, ProblemError, Vehicle

TOO_LARGE = "TOO_LARGE"
WINDOW_UNREACHABLE = "WINDOW_UNREACHABLE"


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
