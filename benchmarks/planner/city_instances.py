"""Last-mile city days as VRPTW instances (VRPLIB), for the side-by-side benchmark.

A clustered city: most addresses around neighbourhood centres, the rest spread over
the whole city, about 4,000 s of driving across (time equals distance, the DIMACS
convention); the depot on the city's edge; a 13-hour day; 40% of the stops in a 2-hour
window, the rest any time; 2 to 5 minutes at each stop; parcels of 1 to 10 units in
vans of 100, so routes of about 20 stops end when the van is full (capacity-bound), and
a fleet a third larger than the parcels need. Nobody tuned the planner on these.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

SIDE = 4_000  # seconds of driving across the city
DAY = 13 * 3_600
CAPACITY = 100


def write_city_day(folder: Path, stops: int, seed: int) -> Path:
    """Write the city day of `stops` stops for `seed` to `folder` and return its path."""
    rng = random.Random(f"{stops}-{seed}")
    side = rng.choice((0, 1, 2, 3))
    along = rng.uniform(0.2, 0.8) * SIDE
    depot = [(along, 0.0), (along, SIDE), (0.0, along), (SIDE, along)][side]
    centres = [
        (rng.uniform(0.1, 0.9) * SIDE, rng.uniform(0.1, 0.9) * SIDE)
        for _ in range(max(3, stops // 25))
    ]
    points = []
    for _ in range(stops):
        if rng.random() < 0.8:
            cx, cy = rng.choice(centres)
            x, y = rng.gauss(cx, 150), rng.gauss(cy, 150)
        else:
            x, y = rng.uniform(0, SIDE), rng.uniform(0, SIDE)
        points.append((min(SIDE, max(0.0, x)), min(SIDE, max(0.0, y))))
    demand = [min(10, max(1, round(rng.expovariate(1 / 5)))) for _ in range(stops)]
    windows = []
    for _ in range(stops):
        if rng.random() < 0.4:
            opens = rng.randrange(0, 11) * 3_600
            windows.append((opens, opens + 7_200))
        else:
            windows.append((0, DAY))
    service = [rng.randrange(120, 301) for _ in range(stops)]
    vehicles = math.ceil(sum(demand) / CAPACITY * 4 / 3) + 2

    name = f"city{stops}_{seed}"
    lines = [
        f"NAME : {name}",
        "TYPE : VRPTW",
        f"DIMENSION : {stops + 1}",
        f"VEHICLES : {vehicles}",
        f"CAPACITY : {CAPACITY}",
        "EDGE_WEIGHT_TYPE : EUC_2D",
        "NODE_COORD_SECTION",
        f"1 {round(depot[0])} {round(depot[1])}",
        *(f"{k + 2} {round(x)} {round(y)}" for k, (x, y) in enumerate(points)),
        "DEMAND_SECTION",
        "1 0",
        *(f"{k + 2} {d}" for k, d in enumerate(demand)),
        "TIME_WINDOW_SECTION",
        f"1 0 {DAY}",
        *(f"{k + 2} {a} {b}" for k, (a, b) in enumerate(windows)),
        "SERVICE_TIME_SECTION",
        "1 0",
        *(f"{k + 2} {s}" for k, s in enumerate(service)),
        "DEPOT_SECTION",
        "1",
        "-1",
        "EOF",
    ]
    path = folder / f"{name}.vrp"
    path.write_text("\n".join(lines) + "\n")
    return path
