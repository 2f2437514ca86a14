"""Of several schedulers exactly one acts, and a standby takes over when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.core import leader
from services.core.db import get_engine
from services.core.leader import Leadership


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _contender(name: str, clock: Clock, ttl: float = 30.0) -> Leadership:
    return Leadership(get_engine, "test", ttl, holder=name, clock=clock)


def test_one_of_two_contenders_leads_and_keeps_leading_while_it_renews(db, clock):
    first, second = _contender("first", clock), _contender("second", clock)
    assert first.is_leader()
    assert not second.is_leader()
    for _ in range(10):  # an hour of renewals every 20 s: the lease never lapses
        clock.now += 20
        assert first.is_leader()
        assert not second.is_leader()


def test_a_standby_takes_over_once_the_silent_holders_lease_has_expired(db, clock):
    first, second = _contender("first", clock), _contender("second", clock)
    assert first.is_leader()
    clock.now += 29  # the holder went silent (died, or stalled) 29 s ago
    assert not second.is_leader()
    clock.now += 2
    assert second.is_leader()
    assert leader.current(get_engine(), "test").holder == "second"
    # The stalled holder wakes up: its term is over, and the lease is not its own.
    assert not first.is_leader()


def test_a_holder_stops_acting_before_anyone_else_may_take_over(db, clock):
    first = _contender("first", clock)
    assert first.is_leader()
    first.engine_factory = lambda: (_ for _ in ()).throw(OSError("database unreachable"))
    clock.now += 28.5  # it could not renew: its term less the clock skew is over
    assert not first.is_leader()
    second = _contender("second", clock)
    assert not second.is_leader()  # nor may anyone else act yet: nobody acts for a moment
    clock.now += 2
    assert second.is_leader()


def test_a_released_lease_is_taken_over_at_once(db, clock):
    first, second = _contender("first", clock), _contender("second", clock)
    assert first.is_leader()
    first.release()
    assert second.is_leader()
    assert not first.is_leader()


def _scheduler(tmp_path: Path, name: str, broker: str) -> subprocess.Popen[bytes]:
    var = tmp_path / name
    var.mkdir()
    env = {
        **os.environ,
        "LASTMILE_VAR_DIR": str(var),
        "LASTMILE_BROKER_URL": broker,  # a broker of its own: no test worker runs its ticks
        "LASTMILE_SCHEDULER_LEASE_SECONDS": "6",
    }
    command = [sys.executable, "-c", "from services.cli import main; main()", "scheduler"]
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _holder_pid(deadline: float) -> int | None:
    while time.monotonic() < deadline:
        lease = leader.current(get_engine(), "scheduler")
        if lease is not None and lease.expires_at > time.time():
            return int(lease.holder.split(":")[1])
        time.sleep(0.2)
    return None


def test_killing_the_active_scheduler_hands_its_work_to_a_standby(db, tmp_path):
    broker = f"sqla+sqlite:///{tmp_path}/broker.db"
    schedulers = [_scheduler(tmp_path, name, broker) for name in ("a", "b")]
    try:
        active = _holder_pid(time.monotonic() + 120)
        assert active in {p.pid for p in schedulers}
        time.sleep(3)  # both run; the lease stays where it is
        assert _holder_pid(time.monotonic() + 5) == active
        os.kill(active, signal.SIGKILL)
        standby = next(p for p in schedulers if p.pid != active)
        deadline = time.monotonic() + 120
        while (taken := _holder_pid(deadline)) == active:
            time.sleep(0.5)
        assert taken == standby.pid
        assert standby.poll() is None
        log = (tmp_path / ("a" if standby is schedulers[0] else "b")).with_suffix(".log")
        assert "Took the scheduler lease" in log.read_text()
    finally:
        for process in schedulers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in schedulers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
