"""A synthetic city delivery day, to measure the planner on a production-sized problem.

usage: .venv/bin/python benchmarks/planner/city_day.py [--deliveries 5000] [--vans 160]
           [--time-limit 60] [--workers N] [--seed 1]

A city about 30 km across, denser in the centre; one depot at the edge of the centre;
deliveries 8:00-21:00 with about a quarter in 2-hour windows; parcels by weight and
volume; vans on 8:00-21:00 shifts with a 30-minute break around midday. Metres,
seconds since midnight, millicents. Road distance is 1.3x the straight line, at an
average 25 km/h. Prints solve time, routes, unassigned and cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.planner.problem import Break, Job, Problem, SolveOptions, Vehicle
from services.planner.solver import solve

HOUR = 3600


def city_day(deliveries: int, vans: int, seed: int) -> tuple[Problem, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Half the addresses in a dense centre, the rest spread over the whole city.
    centre = rng.normal(0, 4000, size=(deliveries // 2, 2))
    suburbs = rng.uniform(-15_000, 15_000, size=(deliveries - deliveries // 2, 2))
    points = np.vstack([[[3000.0, -2000.0]], centre, suburbs])
    distance = np.empty((len(points), len(points)), dtype=np.int64)
    for row in range(0, len(points), 500):  # in slices, to keep memory modest
        diff = points[row : row + 500, None, :] - points[None, :, :]
        distance[row : row + 500] = 1.3 * np.hypot(diff[..., 0], diff[..., 1])
    duration = distance * HOUR // 25_000

    jobs = []
    for k in range(deliveries):
        if rng.random() < 0.25:
            open_ = int(rng.integers(8, 19)) * HOUR
            window = (open_, open_ + 2 * HOUR)
        else:
            window = (8 * HOUR, 21 * HOUR)
        weight = int(rng.integers(200, 15_000))  # grams
        volume = int(rng.integers(1, 60))  # litres
        jobs.append(Job(f"d{k}", k + 1, (weight, volume), window, int(rng.integers(60, 240))))
    lunch = Break(window=(12 * HOUR, 14 * HOUR), duration=30 * 60)
    fleet = [
        Vehicle(
            id=f"van{k}",
            start=0,
            end=0,
            capacity=(800_000, 3_000) if k % 4 else (1_200_000, 5_000),
            shift=(8 * HOUR - 1800, 21 * HOUR + 1800),
            max_duration=11 * HOUR,
            fixed_cost=2_000_000,  # 20 currency units a van and day
            cost_per_distance=30,  # 0.30 per km
            cost_per_time=278,  # about 10 an hour
            breaks=(lunch,),
        )
        for k in range(vans)
    ]
    # Numpy matrices are passed as they are: converting 25 million entries to lists
    # would cost more than the search.
    return (
        Problem(distance, duration, jobs, fleet, drop_penalty=10**9),  # type: ignore[arg-type]
        points,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--vans", type=int, default=160)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    made = time.monotonic()
    problem, _ = city_day(args.deliveries, args.vans, args.seed)
    print(
        f"generated {args.deliveries} deliveries, {args.vans} vans "
        f"in {time.monotonic() - made:.1f} s",
        flush=True,
    )
    began = time.monotonic()
    solution = solve(problem, SolveOptions(time_limit=args.time_limit, workers=args.workers))
    seconds = time.monotonic() - began
    reasons: dict[str, int] = {}
    for u in solution.unassigned:
        reasons[u.reason] = reasons.get(u.reason, 0) + 1
    stops = [len(r.visits) for r in solution.routes]
    routed = solution.cost - len(solution.unassigned) * (problem.drop_penalty or 0)
    print(f"solved in {seconds:.1f} s (limit {args.time_limit:.0f} s)")
    print(
        f"routes {len(solution.routes)}, stops per route {min(stops, default=0)}-"
        f"{max(stops, default=0)} (mean {np.mean(stops) if stops else 0:.1f})"
    )
    print(f"unassigned {len(solution.unassigned)} {reasons}")
    print(
        f"distance {solution.distance / 1000:.0f} km, route cost {routed / 100_000:.2f} "
        f"(currency units), total cost with drop penalties {solution.cost}"
    )


if __name__ == "__main__":
    main()
