"""Solver work on other cores, in plain child processes that any process may start.

A Celery prefork worker is a daemonic process, and `multiprocessing` (so also
`concurrent.futures.ProcessPoolExecutor`) refuses to start children from one
("daemonic processes are not allowed to have children"). Scheduled waves run there.
So each call runs as `python -m services.planner.solver.workers`, started with
`subprocess`: the function and its arguments go in pickled on standard input, the
result (or the exception) comes back pickled on standard output. Threads of this
process only wait for the children, so the GIL is no bottleneck.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The directory holding the `services` package, for children started from anywhere.
_ROOT = str(Path(__file__).resolve().parents[3])


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_all(
    function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], workers: int
) -> list[Any]:
    """`function(*args)` for each args in `calls`, at most `workers` at a time, each in
    its own child process; results in the order of `calls`. `function` must be a
    module-level function (it is pickled by name)."""
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as threads:
        return list(threads.map(lambda args: _in_child(function, args), calls))


def _in_child(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "services.planner.solver.workers"],
        input=pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(
            f"solver worker exited with {done.returncode}: {done.stderr.decode()[-2000:]}"
        )
    ok, value = pickle.loads(done.stdout)
    if not ok:
        raise value
    return value


def _main() -> None:
    function, args = pickle.loads(sys.stdin.buffer.read())
    try:
        answer = (True, function(*args))
    except Exception as error:  # handed back to the parent, which raises it
        answer = (False, error)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _main()
