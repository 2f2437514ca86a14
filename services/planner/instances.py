"""VRPTW benchmark instances (VRPLIB `.vrp`, Solomon `.txt`) as planner `Problem`s.

The DIMACS convention is used throughout: the distance between two points is the
Euclidean distance truncated to one decimal, travel time equals distance, the objective is
total distance, and the fleet size in the file is an upper bound. The planner works in
integers, so distances and times are held in tenths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vrplib

from services.planner.problem import Job, Problem, Solution, Vehicle

SCALE = 10  # tenths: one decimal of the DIMACS convention


class InstanceError(ValueError):
    """An instance file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Instance:
    name: str
    path: Path
    problem: Problem  # job ids are the customer numbers of the file, as strings

    @property
    def customers(self) -> int:
        return len(self.problem.jobs)


def dimacs_matrix(xy: np.ndarray) -> np.ndarray:
    """Pairwise distances in tenths: floor(10 * hypot), as in the DIMACS convention."""
    diff = xy[:, None, :] - xy[None, :, :]
    return np.floor(SCALE * np.hypot(diff[..., 0], diff[..., 1]) + 1e-9).astype(np.int64)


def read_instance(path: str | Path) -> Instance:
    """Read a `.vrp` (VRPLIB) or `.txt` (Solomon) VRPTW instance.

    The depot is the file's first node and customer k is the k-th node after it, as in
    the `.sol` files and the checker.
    """
    path = Path(path)
    fmt = "solomon" if path.suffix.lower() == ".txt" else "vrplib"
    try:
        data = vrplib.read_instance(str(path), instance_format=fmt, compute_edge_weights=False)
        xy = np.asarray(data["node_coord"], dtype=float)
        demand = np.asarray(data["demand"], dtype=np.int64)
        windows = np.asarray(data["time_window"], dtype=float)
        service = np.broadcast_to(np.asarray(data.get("service_time", 0), dtype=float), (len(xy),))
        capacity = int(data["capacity"])
        fleet = int(data.get("vehicles", len(xy) - 1))
        name = str(data.get("name", path.stem))
    except Exception as exc:  # vrplib raises many kinds on a malformed file
        raise InstanceError(f"{path}: not a readable VRPTW instance ({exc})") from exc
    depots = np.asarray(data.get("depot", [0])).ravel()
    n = len(xy)
    if n < 2 or xy.shape != (n, 2) or len(demand) != n or windows.shape != (n, 2):
        raise InstanceError(f"{path}: sections have inconsistent sizes")
    if len(depots) != 1 or int(depots[0]) != 0:
        raise InstanceError(f"{path}: the depot must be the first node")
    if fleet < 1 or capacity < 0:
        raise InstanceError(f"{path}: no vehicles or negative capacity")

    matrix = dimacs_matrix(xy)
    jobs = [
        Job(
            id=str(k),
            location=k,
            demand=(int(demand[k]),),
            window=(_tenths(windows[k, 0]), _tenths(windows[k, 1])),
            service=_tenths(service[k]),
        )
        for k in range(1, n)
    ]
    shift = (_tenths(windows[0, 0]), _tenths(windows[0, 1]))
    vehicles = [
        Vehicle(id=f"v{k}", start=0, end=0, capacity=(capacity,), shift=shift)
        for k in range(1, fleet + 1)
    ]
    rows = matrix.tolist()
    problem = Problem(distance=rows, duration=rows, jobs=jobs, vehicles=vehicles, drop_penalty=None)
    return Instance(name=name, path=path, problem=problem)


def _tenths(value: float) -> int:
    return math.floor(SCALE * value + 0.5)


def customer_routes(solution: Solution) -> list[list[int]]:
    """The solution as lists of customer numbers (depot left out), one per route."""
    return [[int(v.job_id) for v in r.visits] for r in solution.routes if r.visits]


def dimacs_distance(solution: Solution) -> float:
    """The solution's total distance in the instance's own units, one decimal."""
    return round(solution.distance / SCALE, 1)
