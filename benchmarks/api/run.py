"""API benchmark: bookDelivery and bookDeliveries against bare baselines, side by side.

Runs the real API as 2 single-process uvicorn servers on PostgreSQL (a database of its
own, dropped afterwards) and drives it from this process over loopback, dealing the
connections to the two in turn as a load balancer would. (Under `--workers 2` the
kernel hands a new connection to whichever process accepts first, and with the few
long-lived connections of a benchmark one process often got three or all four of the
bulk importer's: it then ran at one core while the other idled, halving the figure.) Prints
throughput, latency percentiles, the ratios to the bare FastAPI INSERT, and the CPU
milliseconds per request (per delivery in bulk) of the API processes and of the local
PostgreSQL server: figures that stay comparable when the machine is busy.

Every scenario runs once per round, in the same order (the steady 100 req/s phase
follows the bulk phase, so it also measures how bookings fare while PostgreSQL writes
back a bulk import); the summary gives each figure's median over the rounds and its
range. On a shared virtual machine the same work can take much more CPU time in one
10-second window than in the next, so one round proves little.

    .venv/bin/python benchmarks/api/run.py [--rounds 3] [--seconds 10] [--database-url postgresql://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from load import Result, closed_loop, open_loop  # noqa: E402

from services.core.migrate import create_scratch_database  # noqa: E402
from services.core.settings import normalize_database_url  # noqa: E402

DATABASE = "lastmile_bench_api"
API_PROCESSES = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(servers: list[int]) -> tuple[float, float]:
    """CPU time used so far by the API servers (and any process they started) and by a
    PostgreSQL server on this machine (none when it is remote), from /proc: unlike
    throughput, it hardly depends on what else the machine is doing."""
    ticks = os.sysconf("SC_CLK_TCK")
    api = database = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            command, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        if {int(stat.parent.name), int(fields[1])} & set(servers):
            api += seconds
        elif command.endswith("(postgres"):
            database += seconds
    return api, database


def _booking(n: int, prefix: str) -> dict:
    return {
        "reference": f"{prefix}-{n}",
        "idempotencyKey": f"{prefix}-{n}",
        "serviceArea": "demo",
        "dropoff": {"lat": 40.65 + (n % 97) * 0.0015, "lng": -74.05 + (n % 89) * 0.0015},
        "recipient": {"name": f"Recipient {n}", "phone": "+1 201 555 0100"},
        "parcel": {"weightGrams": 1200 + n % 500},
    }


BOOK = (
    "mutation Book($input: BookDeliveryInput!) { bookDelivery(input: $input) { "
    "delivery { id status } userErrors { code } } }"
)
BOOK_MANY = (
    "mutation BookMany($inputs: [BookDeliveryInput!]!) { bookDeliveries(inputs: $inputs) { "
    "results { delivery { id } userErrors { code } } } }"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "LASTMILE_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    base = make_url(normalize_database_url(args.database_url))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    # Owned by an ordinary role and served as the merchant and platform roles, as in
    # production: row-level security applies to them.
    scratch = create_scratch_database(admin, DATABASE)
    var_dir = tempfile.mkdtemp(prefix="lastmile-bench-")
    ports: list[int] = []
    while len(ports) < API_PROCESSES:
        if (port := _free_port()) not in ports:
            ports.append(port)
    env = {
        **os.environ,
        **scratch.environment(),
        "LASTMILE_VAR_DIR": var_dir,
        "LASTMILE_ISSUER": f"http://127.0.0.1:{ports[0]}",
        # The throttle runs for real (Redis, shared by both processes) with a budget the
        # benchmark cannot exhaust, so its cost is measured but it never refuses.
        "LASTMILE_REDIS_URL": "redis://127.0.0.1:6379/13",
        # A real broker, as in production: bookings wake the outbox dispatcher through it.
        "LASTMILE_BROKER_URL": "redis://127.0.0.1:6379/12",
        "LASTMILE_GRAPHQL_COST_LIMIT": "100000000",
        "LASTMILE_GRAPHQL_RESTORE_RATE": "100000000",
        "PYTHONPATH": f"{ROOT}:{Path(__file__).parent}",
    }
    os.environ.update(env)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        from services.api.oauth.tokens import issue_access_token
        from services.api.seed import seed_demo
        from services.core.db import get_engine, transaction, utcnow
        from services.core.migrate import upgrade

        upgrade(scratch.owner_url)
        owner = create_engine(scratch.owner_url)
        with owner.begin() as c:  # the serving roles get DML on it (the migrations' default)
            c.execute(text("CREATE TABLE bench_row (id text PRIMARY KEY, payload text NOT NULL)"))
        owner.dispose()
        with transaction() as session:
            merchant = seed_demo(session, utcnow().date())["merchants"][0]
        get_engine().dispose()
        token, _ = issue_access_token(
            client_id=merchant["client_id"],
            tenant_id=merchant["tenant_id"],
            scope="deliveries:read deliveries:write billing:read",
        )
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "server:create",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    env=env,
                    cwd=Path(__file__).parent,
                )
            )
        for port in ports:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    time.sleep(0.5)
        disk = _database_disk(admin)
        probe = DiskProbe(disk) if disk is not None else None
        with probe or contextlib.nullcontext():
            asyncio.run(_measure(ports, token, args, [s.pid for s in servers], probe))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        from services.core.db import get_engine

        get_engine().dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))


class DiskProbe:
    """Writes 8 KB and fdatasyncs it every 50 ms on the database's disk, in a thread.

    A booking's commit waits for PostgreSQL's WAL to reach the disk, so no request is
    faster than the disk's flush at that moment; this shows what the disk alone did
    while a scenario ran (on a virtual disk here, a flush sometimes took 0.5 s even
    with the machine idle).
    """

    def __init__(self, directory: Path):
        self.path = directory / "lastmile-bench-fsync-probe"
        self.flushes: list[tuple[float, float]] = []  # (finished at, seconds taken)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        block = os.urandom(8192)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.wait(0.05):
                started = time.perf_counter()
                os.pwrite(descriptor, block, 0)
                os.fdatasync(descriptor)
                finished = time.perf_counter()
                self.flushes.append((finished, finished - started))
        finally:
            os.close(descriptor)

    def worst_between(self, start: float, end: float) -> float | None:
        taken = [seconds for at, seconds in self.flushes if start <= at <= end]
        return max(taken) if taken else None


def _database_disk(admin: Any) -> Path | None:
    """A writable directory on the disk of a local PostgreSQL server's data, if any."""
    try:
        with admin.connect() as connection:
            data = Path(connection.execute(text("SHOW data_directory")).scalar_one())
    except Exception:  # not allowed to see it: a managed or remote server
        return None
    return data.parent if data.parent.is_dir() and os.access(data.parent, os.W_OK) else None


@dataclass
class Row:
    """One scenario in one round."""

    name: str
    result: Result
    items: int  # deliveries per request
    api_cpu_ms: float  # per item
    db_cpu_ms: float  # per item
    worst_flush_ms: float | None  # the disk probe's slowest 8 KB flush meanwhile
    # Items per second against the same round's bare FastAPI INSERTs per second (none
    # for the fixed-rate phase).
    vs_bare: float | None

    @property
    def items_per_second(self) -> float:
        return self.result.rate * self.items


async def _measure(
    ports: list[int],
    token: str,
    args: argparse.Namespace,
    servers: list[int],
    probe: DiskProbe | None,
) -> None:
    json_headers = {"Content-Type": "application/json"}
    auth = {**json_headers, "Authorization": f"Bearer {token}"}
    host, seconds, connections = "127.0.0.1", args.seconds, args.connections

    def bare(n: int) -> bytes:
        return json.dumps({"payload": f"row {n}"}).encode()

    def bare_graphql(n: int) -> bytes:
        return json.dumps(
            {
                "query": "mutation($p: String!) { insert(payload: $p) }",
                "variables": {"p": f"row {n}"},
            }
        ).encode()

    def book(prefix: str) -> Callable[[int], bytes]:
        return lambda n: json.dumps(
            {"query": BOOK, "variables": {"input": _booking(n, prefix)}}
        ).encode()

    def book_many(prefix: str) -> Callable[[int], bytes]:
        def body(n: int) -> bytes:
            inputs = [_booking(n * 250 + i, prefix) for i in range(250)]
            return json.dumps({"query": BOOK_MANY, "variables": {"inputs": inputs}}).encode()

        return body

    # Warm every path in both worker processes.
    await closed_loop(host, ports, "/bare/insert", bare, json_headers, 4, 1.0)
    await closed_loop(host, ports, "/graphql", book("warm"), auth, 4, 2.0)

    async def scenario(
        rows: list[Row], name: str, items: int, run: Any, fixed_rate: bool = False
    ) -> None:
        api_before, db_before = _cpu_seconds(servers)
        started = time.perf_counter()
        result: Result = await run
        worst = probe.worst_between(started, time.perf_counter()) if probe else None
        api_after, db_after = _cpu_seconds(servers)
        per_item = 1000 / max(1, len(result.latencies) * items)
        baseline = rows[0].result.rate if rows else result.rate
        rows.append(
            Row(
                name,
                result,
                items,
                api_cpu_ms=(api_after - api_before) * per_item,
                db_cpu_ms=(db_after - db_before) * per_item,
                worst_flush_ms=None if worst is None else worst * 1000,
                vs_bare=None if fixed_rate else result.rate * items / baseline,
            )
        )

    rounds: list[list[Row]] = []
    for round_number in range(args.rounds):
        rows: list[Row] = []
        prefix = f"r{round_number}"
        await scenario(
            rows,
            "bare FastAPI INSERT",
            1,
            closed_loop(host, ports, "/bare/insert", bare, json_headers, connections, seconds),
        )
        await scenario(
            rows,
            "bare strawberry mutation INSERT",
            1,
            closed_loop(
                host, ports, "/bare/graphql", bare_graphql, json_headers, connections, seconds
            ),
        )
        await scenario(
            rows,
            "bookDelivery (JWT, everything it writes)",
            1,
            closed_loop(host, ports, "/graphql", book(prefix + "max"), auth, connections, seconds),
        )
        # An importer sends a few batches at once: with two per API process, one is
        # computed while the other waits on the database.
        await scenario(
            rows,
            "bookDeliveries x250",
            250,
            closed_loop(host, ports, "/graphql", book_many(prefix + "bulk"), auth, 4, seconds),
        )
        await scenario(
            rows,
            "bookDelivery at a steady 100 req/s",
            1,
            open_loop(host, ports, "/graphql", book(prefix + "steady"), auth, 100.0, seconds),
            fixed_rate=True,
        )
        rounds.append(rows)
        _print_round(round_number + 1, rows)
    _print_summary(rounds)


_HEADER = (
    "req/s", "items/s", "p50 ms", "p99 ms", "errors", "vs bare", "api cpu", "db cpu", "flush ms"
)  # fmt: skip


def _print_round(number: int, rows: list[Row]) -> None:
    print(f"\nround {number}{'':36} " + " ".join(f"{h:>8}" for h in _HEADER))
    for row in rows:
        result = row.result
        print(
            f"{row.name:44} {result.rate:8.1f} {row.items_per_second:8.1f} "
            f"{result.percentile(50) * 1000:8.1f} {result.percentile(99) * 1000:8.1f} "
            f"{result.errors:8d} {'' if row.vs_bare is None else f'{row.vs_bare:.1%}':>8} "
            f"{row.api_cpu_ms:8.2f} {row.db_cpu_ms:8.2f} "
            f"{'' if row.worst_flush_ms is None else f'{row.worst_flush_ms:.1f}':>8}",
            flush=True,
        )


def _print_summary(rounds: list[list[Row]]) -> None:
    """Each figure's median over the rounds, with its range (CPU: ms per item)."""

    def spread(values: list[float], form: str) -> str:
        middle = statistics.median(values)
        return f"{middle:{form}} ({min(values):{form}}-{max(values):{form}})"

    print(f"\nmedian (range) of {len(rounds)} rounds")
    for index, first in enumerate(rounds[0]):
        rows = [rows[index] for rows in rounds]
        ratios = [r.vs_bare * 100 for r in rows if r.vs_bare is not None]
        flushes = [r.worst_flush_ms for r in rows if r.worst_flush_ms is not None]
        print(
            f"{first.name:44} items/s {spread([r.items_per_second for r in rows], '.0f')}, "
            f"p99 ms {spread([r.result.percentile(99) * 1000 for r in rows], '.1f')}, "
            + (f"vs bare {spread(ratios, '.1f')} %, " if ratios else "")
            + f"api cpu {spread([r.api_cpu_ms for r in rows], '.2f')}, "
            f"db cpu {spread([r.db_cpu_ms for r in rows], '.2f')}"
            + (f", worst disk flush ms {spread(flushes, '.0f')}" if flushes else "")
        )


if __name__ == "__main__":
    main()
