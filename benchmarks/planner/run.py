"""The planner and PyVRP side by side, every plan checked by the instances' check_vrptw.py.

usage: .venv/bin/python benchmarks/planner/run.py [--suite city|solomon|gh1000]
           [--time-limit S] [--sizes 150,300,600,1000] [--seeds 1-5] [--only R101,RC105]
           [--out DIR] [--no-reference]

For each instance the planner (`lastmile bench planner --cores 1`'s code path) and the
reference, PyVRP 0.14 as its users run it (`pyvrp.solve`, default parameters, stopped
at the same wall-clock deadline), run at the same time, each in its own process on one
core, so noise from the machine hits both alike. Both plans are written as
`{"routes": [...]}` to DIR and checked by the independent checker: distance, gap and
feasibility in the tables are the checker's, never a solver's.

Suites: `city` generates last-mile city days (`city_instances.py`) of the given sizes
and seeds into DIR; `solomon` and `gh1000` read the VRPTW instances under
BENCHMARKS_DIR (not part of this repository; the checker comes with them). Prints one
row per instance, then a table per class and size: mean cost of each engine, their
ratio (mean and worst), gaps to the best known where there is one, and when each
engine first held a complete plan.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from city_instances import write_city_day  # noqa: E402

BENCHMARKS = Path(
    os.environ.get("BENCHMARKS_DIR") or REPO.parent / "shared" / "benchmarks"
).resolve()
CHECKER = BENCHMARKS / "check_vrptw.py"


def lastmile_plan(path: Path, time_limit: float) -> dict[str, object]:
    from services.planner.bench import bench_result

    result = bench_result(path, time_limit, cores=1)
    return {
        "routes": result["routes"],
        "seconds": result["seconds"],
        "first": result["first_plan_seconds"],
    }


class _Deadline:
    """PyVRP stopping criterion: a wall-clock deadline fixed before the call, so its own
    first plan counts against the budget as the planner's does."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, best_cost: float) -> bool:
        return time.monotonic() >= self.deadline


def pyvrp_plan(path: Path, time_limit: float) -> dict[str, object]:
    import pyvrp

    began = time.monotonic()
    data = pyvrp.read(str(path), round_func="dimacs")
    first: list[float] = []

    class Callbacks(pyvrp.IteratedLocalSearchCallbacks):
        def on_best(self, best: pyvrp.Solution) -> None:
            if not first and best.is_feasible():
                first.append(time.monotonic() - began)

    params = pyvrp.SolveParams(ils=pyvrp.IteratedLocalSearchParams(callbacks=Callbacks()))
    result = pyvrp.solve(
        data, stop=_Deadline(began + time_limit), params=params, collect_stats=False
    )
    routes = [
        [activity.idx + 1 for activity in route.schedule() if activity.is_client()]
        for route in result.best.routes()
    ]
    if result.best.is_feasible() and not first:
        first.append(time.monotonic() - began)
    return {
        "routes": routes,
        "seconds": round(time.monotonic() - began, 2),
        "first": round(first[0], 2) if first else None,
    }


def check(path: Path, plan: dict[str, object], out: Path, engine: str) -> dict[str, object]:
    written = out / f"{path.stem}.{engine}.json"
    written.write_text(json.dumps({"routes": plan["routes"]}))
    checked = subprocess.run(
        [sys.executable, str(CHECKER), str(path), str(written)], capture_output=True, text=True
    )
    verdict = json.loads(checked.stdout)
    return {
        "distance": verdict["distance"],
        "bks": verdict["best_known"],
        "gap": verdict["gap_pct"],
        "routes": verdict["routes"],
        "feasible": checked.returncode == 0,
        "errors": verdict["errors"],
        "seconds": plan["seconds"],
        "first": plan["first"],
    }


def instances(args: argparse.Namespace, out: Path) -> list[tuple[str, Path]]:
    """(class, path) of every instance of the run."""
    if args.suite == "city":
        low, _, high = args.seeds.partition("-")
        seeds = range(int(low), int(high or low) + 1)
        sizes = [int(size) for size in args.sizes.split(",")]
        return [
            (f"city {size}", write_city_day(out, size, seed)) for size in sizes for seed in seeds
        ]
    paths = sorted((BENCHMARKS / "vrptw" / args.suite).glob("*.vrp"))
    if not paths:
        sys.exit(f"no {args.suite} instances under {BENCHMARKS}/vrptw: set BENCHMARKS_DIR")
    if args.only:
        wanted = set(args.only.split(","))
        paths = [p for p in paths if p.stem in wanted]
    return [(_solomon_class(p.stem) if args.suite == "solomon" else p.stem, p) for p in paths]


def _solomon_class(name: str) -> str:
    return name[:-2]  # C101 -> C1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["city", "solomon", "gh1000"], default="solomon")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--sizes", default="150,300,600,1000")
    parser.add_argument("--seeds", default="1-5", help="city days: seeds, e.g. 1-5")
    parser.add_argument("--only", default="", help="comma-separated instance names")
    parser.add_argument("--out", type=Path, default=None, help="where to write the plans")
    parser.add_argument("--no-reference", action="store_true", help="the planner alone")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"planner-{args.suite}-"))
    out.mkdir(parents=True, exist_ok=True)
    engines = ["lastmile"] if args.no_reference else ["lastmile", "pyvrp"]
    solvers = {"lastmile": lastmile_plan, "pyvrp": pyvrp_plan}

    print(
        f"{'instance':14} {'n':>5} {'lastmile':>10} {'pyvrp':>10} {'ratio':>6} "
        f"{'gap lm %':>8} {'gap pv %':>8} {'first lm':>8} {'first pv':>8}  feasible",
        flush=True,
    )
    rows = []
    # One instance at a time, both engines at once: each on its own core.
    with ProcessPoolExecutor(max_workers=len(engines)) as pool:
        for cls, path in instances(args, out):
            futures = {e: pool.submit(solvers[e], path, args.time_limit) for e in engines}
            plans = {e: check(path, futures[e].result(), out, e) for e in engines}
            customers = _customers(path)
            row = {"class": cls, "instance": path.stem, "n": customers, **plans}
            rows.append(row)
            _print_row(row, engines)
    _print_summary(rows, engines, args.time_limit)
    print(f"\nplans in {out}")


def _customers(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("DIMENSION"):
            return int(line.split(":")[1]) - 1
    return 0


def _print_row(row: dict, engines: list[str]) -> None:
    lm = row["lastmile"]
    pv = row.get("pyvrp")
    ratio = f"{lm['distance'] / pv['distance']:.4f}" if pv and pv["distance"] else ""

    def gap(plan: dict | None) -> str:
        return "" if not plan or plan["gap"] is None else f"{plan['gap']:.2f}"

    def first(plan: dict | None) -> str:
        return "" if not plan or plan["first"] is None else f"{plan['first']:.2f}"

    feasible = [
        f"{e}: {'yes' if row[e]['feasible'] else 'NO ' + '; '.join(row[e]['errors'])}"
        for e in engines
    ]
    print(
        f"{row['instance']:14} {row['n']:>5} {lm['distance']:>10.1f} "
        f"{pv['distance'] if pv else '':>10} {ratio:>6} {gap(lm):>8} {gap(pv):>8} "
        f"{first(lm):>8} {first(pv):>8}  {', '.join(feasible)}",
        flush=True,
    )


def _print_summary(rows: list[dict], engines: list[str], time_limit: float) -> None:
    by_class: defaultdict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_class[row["class"]].append(row)
    print(f"\nper class, {time_limit:g} s, one core each")
    print(
        f"{'class':10} {'count':>5} {'feasible':>9} {'lastmile':>11} {'pyvrp':>11} "
        f"{'ratio':>6} {'worst':>6} {'gap lm %':>8} {'gap pv %':>8}"
    )
    for cls, group in [*by_class.items(), ("all", rows)]:
        feasible = [r for r in group if all(r[e]["feasible"] for e in engines)]
        if not feasible:
            print(f"{cls:10} {len(group):>5} {0:>9}")
            continue
        mean = {e: statistics.mean(r[e]["distance"] for r in feasible) for e in engines}
        ratios = (
            [r["lastmile"]["distance"] / r["pyvrp"]["distance"] for r in feasible]
            if "pyvrp" in engines
            else []
        )
        gaps = {e: [r[e]["gap"] for r in feasible if r[e]["gap"] is not None] for e in engines}
        print(
            f"{cls:10} {len(group):>5} {len(feasible):>9} {mean['lastmile']:>11.1f} "
            f"{mean.get('pyvrp', float('nan')):>11.1f} "
            f"{mean['lastmile'] / mean['pyvrp'] if 'pyvrp' in mean else float('nan'):>6.4f} "
            f"{max(ratios) if ratios else float('nan'):>6.4f} "
            f"{statistics.mean(gaps['lastmile']) if gaps['lastmile'] else float('nan'):>8.2f} "
            f"{statistics.mean(gaps['pyvrp']) if gaps.get('pyvrp') else float('nan'):>8.2f}"
        )


if __name__ == "__main__":
    main()
