"""`infra/local/run.sh` (what `make run` runs) fails honestly and stops on Ctrl-C.

Each test runs the real script on embedded defaults (SQLite and a SQLite broker in a
temporary LASTMILE_VAR_DIR, a port of its own), in its own process group, and checks
that nothing of it is left running afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

RUN_SH = Path(__file__).resolve().parents[1] / "infra" / "local" / "run.sh"
BANNER = "Lastmile is running"


def _start(var_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LASTMILE_")}
    env.update(LASTMILE_VAR_DIR=str(var_dir), LASTMILE_PORT=str(port))
    return subprocess.Popen(
        ["bash", str(RUN_SH)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(run: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        out, err = run.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)  # only if the script left something behind
            left_behind = True
        except ProcessLookupError:
            left_behind = False
    assert not left_behind, "run.sh left processes running"
    return out, err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_api_that_cannot_start_is_reported_with_its_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = _start(tmp_path, taken.getsockname()[1])
        out, err = _finish(run, timeout=180)
    assert run.returncode == 1
    assert BANNER not in out
    assert "the API exited with status" in err
    assert f"last lines of {tmp_path}/api.log" in err
    assert "address already in use" in err


def test_ctrl_c_during_start_up_stops_everything_without_a_banner(tmp_path):
    run = _start(tmp_path, _free_port())
    deadline = time.monotonic() + 180
    while not (tmp_path / "api.log").exists():  # migrated and seeded; the API is starting
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    began = time.monotonic()
    out, err = _finish(run, timeout=30)
    assert run.returncode == 130
    assert time.monotonic() - began < 15
    assert BANNER not in out
    assert "interrupted" in err
