"""The solver's language: a routing problem in integers, and its solution.

Everything here is pure data. Production plan runs and the benchmark harness both
translate their inputs into a `Problem` and read a `Solution` back, so the benchmark
measures exactly the solver that plans real routes.

Units are whatever the caller chooses, as long as they are integers and consistent:
production uses metres, seconds and millicents; the DIMACS benchmarks use tenths of a
distance unit for both distance and time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


class ProblemError(ValueError):
    """The problem is malformed (not merely infeasible); the message names the culprit."""


@dataclass(frozen=True)
class Job:
    """One stop to serve: a delivery drop-off."""

    id: str
    location: int  # row/column in the matrices
    demand: tuple[int, ...]  # one entry per capacity dimension (e.g. grams, cm3, parcels)
    window: tuple[int, int]  # earliest and latest start of service
    service: int = 0  # time spent at the stop


@dataclass(frozen=True)
class Break:
    """A driver break that must start inside `window` and lasts `duration`."""

    window: tuple[int, int]
    duration: int


@dataclass(frozen=True)
class Vehicle:
    """A van on a shift: where it starts and ends, what it carries, what it costs."""

    id: str
    start: int  # location index of the start depot
    end: int  # location index of the end depot
    capacity: tuple[int, ...]  # same dimensions as Job.demand
    shift: tuple[int, int]  # earliest departure, latest return
    max_duration: int | None = None  # longest route, start to end
    fixed_cost: int = 0  # paid once if the vehicle is used
    cost_per_distance: int = 1  # per distance unit driven
    cost_per_time: int = 0  # per time unit from departure to return (wages)
    breaks: tuple[Break, ...] = ()


# A square matrix of integers: an int64 array (what plan runs pass) or nested lists.
Matrix = np.ndarray | Sequence[Sequence[int]]


@dataclass(frozen=True)
class Problem:
    distance: Matrix
    duration: Matrix
    jobs: Sequence[Job]
    vehicles: Sequence[Vehicle]
    # None: every job must be served (benchmarks). Otherwise the cost of leaving a job
    # out; production sets it far above any route's cost so jobs are dropped only when
    # they cannot be served.
    drop_penalty: int | None = None


@dataclass(frozen=True)
class Visit:
    job_id: str
    arrival: int
    start: int  # service start (after any waiting)
    departure: int


@dataclass(frozen=True)
class Route:
    vehicle_id: str
    visits: tuple[Visit, ...]
    departure: int  # leaves the start depot
    arrival: int  # back at the end depot
    distance: int
    cost: int  # fixed + distance + time cost, in the problem's cost units
    breaks: tuple[tuple[int, int], ...] = ()  # (start, end) of each break taken


@dataclass(frozen=True)
class Unassigned:
    job_id: str
    reason: str  # a stable code, e.g. WINDOW_UNREACHABLE, TOO_HEAVY, NO_CAPACITY


@dataclass(frozen=True)
class Solution:
    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...]
    distance: int
    cost: int


# Called with the cost of each improving solution found, so a plan run can report
# "best cost so far" while the search goes on.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class SolveOptions:
    time_limit: float = 10.0  # seconds of wall clock for the whole solve
    on_progress: ProgressCallback | None = field(default=None, compare=False)
    # Worker processes for very large problems solved in pieces; None: one per core.
    workers: int | None = None
