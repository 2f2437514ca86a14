"""The solver's first step: checking a `Problem` and finding what no vehicle can serve.

`validate` raises `ProblemError` naming the first malformed job, vehicle or matrix and
hands back the matrices as arrays (`Matrices`), checked once and shared by every later
step; `feasible_vehicles` tells which vehicle could serve which job alone, and
`impossible_reason` why a job that none can serve is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.planner.insertion import schedule
from services.planner.problem import Job, Matrix, Problem, ProblemError, Vehicle

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


def _square_matrix(rows: Matrix, name: str) -> np.ndarray:
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

    Under the planner's timing model (`insertion`): the van leaves as late as reaching
    the job when its window opens allows, never before its shift; a break is taken
    between stops, before the visit or after it, starting inside its window, and the
    route must be back within the shift and the route-length limit. So a job that only
    a break makes impossible is told apart from one the fleet has no room for.
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
    longest = np.array(
        [v.max_duration if v.max_duration is not None else _NEVER for v in vehicles],
        dtype=np.int64,
    )[None, :]
    go = m.duration[np.ix_(start, loc)].T  # jobs x vehicles
    back = m.duration[np.ix_(loc, end)]
    if {v.breaks for v in vehicles} == {()}:
        leave = np.maximum(shift0, open_ - go)
        begin = np.maximum(leave + go, open_)
        arrival = begin + service + back
        return fits & (begin <= close) & (arrival <= shift1) & (arrival - leave <= longest)
    if any(len(v.breaks) > 1 for v in vehicles):
        return fits & _alone_by_schedule(problem, m)
    lunch = [min(v.breaks, key=lambda b: b.window) if v.breaks else None for v in vehicles]

    def row(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)[None, :]

    rule_open = row([b.window[0] if b else 0 for b in lunch])
    rule_close = row([b.window[1] if b else _NEVER for b in lunch])
    rest = row([b.duration if b else 0 for b in lunch])
    # When the van leaves (`insertion._departure`): as late as the job allows, but no
    # later than the break must start unless the break fits before leaving; time off
    # the route counts as resting.
    wanted = np.maximum(shift0, open_ - go)
    rested = np.maximum(shift0, rule_open)
    rested_before = (rested <= rule_close) & (rested + rest <= wanted)
    leave = np.where(rested_before, wanted, np.maximum(shift0, np.minimum(wanted, rule_close)))
    begin = np.maximum(leave + go, open_)  # service start with no break on the way
    free = begin + service
    home = free + back

    def in_time(arrival: np.ndarray) -> np.ndarray:
        return (arrival <= shift1) & (arrival - leave <= longest)

    # The break before leaving, or after coming back.
    off_route = (
        (begin <= close)
        & in_time(home)
        & (rested_before | (np.maximum(home, rule_open) <= rule_close))
    )
    # The break on the way back.
    pause = np.maximum(free, rule_open)
    on_way_back = (
        (begin <= close) & (pause <= rule_close) & in_time(np.maximum(home + rest, pause + rest))
    )
    # The break on the way there.
    pause = np.maximum(leave, rule_open)
    first = np.maximum(np.maximum(leave + go + rest, pause + rest), open_)
    on_way_there = (pause <= rule_close) & (first <= close) & in_time(first + service + back)
    return fits & (off_route | on_way_back | on_way_there)


_NEVER = np.iinfo(np.int64).max // 4


def _alone_by_schedule(problem: Problem, m: Matrices) -> np.ndarray:
    """Jobs x vehicles by the timing model itself, one lone visit at a time (for vans
    with several breaks, which the product does not have)."""
    return np.array(
        [
            [schedule(m.distance, m.duration, v, [replace(j, demand=(0,) * len(j.demand))])
             is not None for v in problem.vehicles]
            for j in problem.jobs
        ],
        dtype=bool,
    ).reshape(len(problem.jobs), len(problem.vehicles))  # fmt: skip


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
