"""Solve a VRPTW benchmark suite with the planner and report only what the checker confirms.

usage: .venv/bin/python benchmarks/planner/run.py [--suite solomon|gh1000]
           [--time-limit S] [--jobs N] [--only R101,RC105] [--out DIR]

Each instance is solved in its own worker process (one core each), its plan written as
`{"routes": [...]}` to DIR/<instance>.json and checked by the check_vrptw.py that comes with
the instances; distance, gap and feasibility in the table are the checker's, not the
solver's. The VRPTW benchmark instances are not part of this repository: BENCHMARKS_DIR
names their directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from services.planner.bench import bench_result  # noqa: E402

BENCHMARKS = Path(
    os.environ.get("BENCHMARKS_DIR") or REPO.parent / "shared" / "benchmarks"
).resolve()
CHECKER = BENCHMARKS / "check_vrptw.py"


def solve_and_check(path: Path, time_limit: float, out: Path) -> dict[str, object]:
    result = bench_result(path, time_limit)
    plan = out / f"{path.stem}.json"
    plan.write_text(json.dumps({"routes": result["routes"]}))
    checked = subprocess.run(
        [sys.executable, str(CHECKER), str(path), str(plan)], capture_output=True, text=True
    )
    verdict = json.loads(checked.stdout)
    return {
        "instance": verdict["instance"],
        "distance": verdict["distance"],
        "bks": verdict["best_known"],
        "gap": verdict["gap_pct"],
        "routes": verdict["routes"],
        "seconds": result["seconds"],
        "feasible": checked.returncode == 0,
        "errors": verdict["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["solomon", "gh1000"], default="solomon")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=1, help="instances solved at once")
    parser.add_argument("--only", default="", help="comma-separated instance names")
    parser.add_argument("--out", type=Path, default=None, help="where to write the plans")
    args = parser.parse_args()

    paths = sorted((BENCHMARKS / "vrptw" / args.suite).glob("*.vrp"))
    if not paths:
        sys.exit(f"no {args.suite} instances under {BENCHMARKS}/vrptw: set BENCHMARKS_DIR")
    if args.only:
        wanted = set(args.only.split(","))
        paths = [p for p in paths if p.stem in wanted]
    out = args.out or Path(tempfile.mkdtemp(prefix=f"planner-{args.suite}-"))
    out.mkdir(parents=True, exist_ok=True)

    print(
        f"{'instance':10} {'distance':>10} {'BKS':>10} {'gap %':>7} {'routes':>6} "
        f"{'seconds':>7}  feasible",
        flush=True,
    )
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(solve_and_check, p, args.time_limit, out) for p in paths]
        for future in futures:
            row = future.result()
            rows.append(row)
            gap = "" if row["gap"] is None else f"{row['gap']:.2f}"
            print(
                f"{row['instance']:10} {row['distance']:>10.1f} {row['bks'] or '':>10} "
                f"{gap:>7} {row['routes']:>6} {row['seconds']:>7.2f}  "
                f"{'yes' if row['feasible'] else 'NO ' + '; '.join(row['errors'])}",
                flush=True,
            )
    feasible = [r for r in rows if r["feasible"]]
    gaps = [float(r["gap"]) for r in feasible if r["gap"] is not None]
    print(
        f"\n{len(feasible)}/{len(rows)} feasible (checked); "
        f"mean gap over feasible {statistics.mean(gaps) if gaps else float('nan'):.2f}%; "
        f"mean seconds {statistics.mean(float(r['seconds']) for r in rows):.2f}; "
        f"plans in {out}"
    )


if __name__ == "__main__":
    main()
