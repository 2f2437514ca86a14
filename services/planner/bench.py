"""`lastmile bench planner FILE...`: solve VRPTW benchmark instances with the planner.

With `--json` each instance prints one line
`{"instance", "customers", "routes", "distance", "seconds"}`: routes as customer numbers
of the file (depot left out), distance in the DIMACS convention with one decimal. A plan
that leaves customers out (which the benchmarks never should) adds "unassigned".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from services.planner.instances import customer_routes, dimacs_distance, read_instance
from services.planner.problem import SolveOptions
from services.planner.solver import solve


def bench_result(path: Path, time_limit: float, cores: int | None = None) -> dict[str, object]:
    """Solve one instance file and describe the plan as the bench contract says, with
    `first_plan_seconds`: when the search first held a complete, feasible plan."""
    instance = read_instance(path)
    began = time.monotonic()
    first: list[float] = []

    def progress(cost: int) -> None:
        if not first:
            first.append(time.monotonic() - began)

    solution = solve(
        instance.problem, SolveOptions(time_limit=time_limit, workers=cores, on_progress=progress)
    )
    seconds = time.monotonic() - began
    result: dict[str, object] = {
        "instance": instance.name,
        "customers": instance.customers,
        "routes": customer_routes(solution),
        "distance": dimacs_distance(solution),
        "seconds": round(seconds, 2),
        "first_plan_seconds": round(first[0], 2) if first else None,
    }
    if solution.unassigned:  # only when the plan is incomplete: not part of the contract
        result["unassigned"] = [int(u.job_id) for u in solution.unassigned]
    return result


@click.command("planner")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds of wall clock per instance.",
)
@click.option(
    "--cores",
    type=click.IntRange(min=1),
    default=None,
    help="Cores the solver may use (default: all, as plan runs do); compare with 1.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per instance.")
def bench_planner(
    files: tuple[Path, ...], time_limit: float, cores: int | None, as_json: bool
) -> None:
    """Solve VRPTW benchmark instances (VRPLIB .vrp or Solomon .txt)."""
    for path in files:
        result = bench_result(path, time_limit, cores)
        if as_json:
            click.echo(json.dumps(result))
            continue
        routes = result["routes"]
        assert isinstance(routes, list)
        missing = result.get("unassigned", [])
        assert isinstance(missing, list)
        click.echo(
            f"{result['instance']}: {result['customers']} customers, {len(routes)} routes, "
            f"distance {result['distance']}, {result['seconds']} s"
            + (f", {len(missing)} NOT SERVED" if missing else "")
        )
