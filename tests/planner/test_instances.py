"""Reading VRPTW benchmark files into planner problems under the DIMACS convention."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.planner.instances import (
    InstanceError,
    customer_routes,
    dimacs_distance,
    read_instance,
)
from services.planner.problem import Route, Solution, Visit

SOLOMON_TXT = """R9

VEHICLE
NUMBER     CAPACITY
   3         50

CUSTOMER
CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME

    0      0          0          0          0        500          0
    1      3          4         10         20         60         10
    2      1          1          7         50         90         10
    3      0          2         30          0        400          5
"""

VRPLIB = """NAME : tiny
TYPE : CVRPTW
DIMENSION : 3
VEHICLES : 2
CAPACITY : 20
SERVICE_TIME : 10
EDGE_WEIGHT_TYPE : EUC_2D
NODE_COORD_SECTION
1 0 0
2 3 4
3 1 1
DEMAND_SECTION
1 0
2 5
3 6
DEPOT_SECTION
1
-1
TIME_WINDOW_SECTION
1 0 100
2 10 20
3 0 50
EOF
"""


def test_solomon_text(tmp_path: Path) -> None:
    path = tmp_path / "R9.txt"
    path.write_text(SOLOMON_TXT)
    instance = read_instance(path)
    problem = instance.problem
    assert instance.name == "R9" and instance.customers == 3
    assert len(problem.vehicles) == 3
    assert problem.vehicles[0].capacity == (50,) and problem.vehicles[0].shift == (0, 5000)
    assert [j.id for j in problem.jobs] == ["1", "2", "3"]
    assert problem.jobs[0].window == (200, 600) and problem.jobs[0].service == 100
    assert problem.jobs[2].service == 50 and problem.jobs[2].demand == (30,)
    assert problem.distance[0][1] == 50  # 5.0 in tenths
    assert problem.distance[0][2] == 14  # sqrt(2) = 1.414 -> 1.4
    assert problem.duration == problem.distance
    assert problem.drop_penalty is None


def test_vrplib(tmp_path: Path) -> None:
    path = tmp_path / "tiny.vrp"
    path.write_text(VRPLIB)
    problem = read_instance(path).problem
    assert len(problem.vehicles) == 2
    assert [j.service for j in problem.jobs] == [100, 100]
    assert problem.jobs[0].window == (100, 200)
    assert problem.distance[1][2] == 36  # hypot(2, 3) = 3.605 -> 3.6


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.vrp"
    path.write_text("NAME : broken\nNODE_COORD_SECTION\n1 0 0\nEOF\n")
    with pytest.raises(InstanceError, match=r"broken\.vrp"):
        read_instance(path)
    with pytest.raises(InstanceError, match=r"missing\.txt"):
        read_instance(tmp_path / "missing.txt")


def test_solution_back_to_customer_numbers() -> None:
    def route(*ids: str) -> Route:
        return Route("v", tuple(Visit(i, 0, 0, 0) for i in ids), 0, 0, 0, 0)

    solution = Solution((route("12", "5", "40"), route("7", "3")), (), 16429, 16429)
    assert customer_routes(solution) == [[12, 5, 40], [7, 3]]
    assert dimacs_distance(solution) == 1642.9
