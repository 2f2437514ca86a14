"""API benchmark: bookDelivery and bookDeliveries against bare baselines, side by side.

Runs the real API with 2 uvicorn worker processes on PostgreSQL (a database of its
own, dropped afterwards) and drives it from this process over loopback. Prints
throughput, latency percentiles, the ratios to the bare FastAPI INSERT, and the API
processes' CPU milliseconds per request (per delivery in bulk), the figure that
stays comparable when the machine is busy.

    .venv/bin/python benchmarks/api/run.py [--seconds 10] [--database-url postgresql://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(root: int) -> float:
    """CPU time used so far by a process and its children (the uvicorn workers), from
    /proc: unlike throughput, it hardly depends on what else the machine is doing."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


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
    # Owned by an ordinary role, as in production: row-level security applies to it.
    url = create_scratch_database(admin, DATABASE)
    var_dir = tempfile.mkdtemp(prefix="lastmile-bench-")
    port = _free_port()
    env = {
        **os.environ,
        "LASTMILE_DATABASE_URL": url,
        "LASTMILE_VAR_DIR": var_dir,
        "LASTMILE_ISSUER": f"http://127.0.0.1:{port}",
        # The throttle runs for real (Redis, shared by both workers) with a budget the
        # benchmark cannot exhaust, so its cost is measured but it never refuses.
        "LASTMILE_REDIS_URL": "redis://127.0.0.1:6379/13",
        # A real broker, as in production: bookings wake the outbox dispatcher through it.
        "LASTMILE_BROKER_URL": "redis://127.0.0.1:6379/12",
        "LASTMILE_GRAPHQL_COST_LIMIT": "100000000",
        "LASTMILE_GRAPHQL_RESTORE_RATE": "100000000",
        "PYTHONPATH": f"{ROOT}:{Path(__file__).parent}",
    }
    os.environ.update(env)
    server = None
    try:
        from services.api.oauth.tokens import issue_access_token
        from services.api.seed import seed_demo
        from services.core.db import get_engine, transaction, utcnow
        from services.core.migrate import upgrade

        upgrade(url)
        with get_engine().begin() as c:
            c.execute(text("CREATE TABLE bench_row (id text PRIMARY KEY, payload text NOT NULL)"))
        with transaction() as session:
            merchant = seed_demo(session, utcnow().date())["merchants"][0]
        get_engine().dispose()
        token, _ = issue_access_token(
            client_id=merchant["client_id"],
            tenant_id=merchant["tenant_id"],
            scope="deliveries:read deliveries:write billing:read",
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "server:create",
                "--factory",
                "--workers",
                "2",
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
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.5)
        asyncio.run(_measure(port, token, args.seconds, args.connections, server.pid))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from services.core.db import get_engine

        get_engine().dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))


async def _measure(port: int, token: str, seconds: float, connections: int, server: int) -> None:
    json_headers = {"Content-Type": "application/json"}
    auth = {**json_headers, "Authorization": f"Bearer {token}"}
    host = "127.0.0.1"

    def bare(n: int) -> bytes:
        return json.dumps({"payload": f"row {n}"}).encode()

    def bare_graphql(n: int) -> bytes:
        return json.dumps(
            {
                "query": "mutation($p: String!) { insert(payload: $p) }",
                "variables": {"p": f"row {n}"},
            }
        ).encode()

    def book(prefix: str):
        return lambda n: json.dumps(
            {"query": BOOK, "variables": {"input": _booking(n, prefix)}}
        ).encode()

    def book_many(n: int) -> bytes:
        inputs = [_booking(n * 250 + i, "bulk") for i in range(250)]
        return json.dumps({"query": BOOK_MANY, "variables": {"inputs": inputs}}).encode()

    # Warm every path in both worker processes.
    await closed_loop(host, port, "/bare/insert", bare, json_headers, 4, 1.0)
    await closed_loop(host, port, "/graphql", book("warm"), auth, 4, 2.0)

    rows = []

    async def scenario(name: str, items: int, run: Any) -> Result:
        before = _cpu_seconds(server)
        result: Result = await run
        cpu = _cpu_seconds(server) - before
        rows.append((name, result, items, cpu * 1000 / max(1, len(result.latencies) * items)))
        return result

    baseline = await scenario(
        "bare FastAPI INSERT",
        1,
        closed_loop(host, port, "/bare/insert", bare, json_headers, connections, seconds),
    )
    await scenario(
        "bare strawberry mutation INSERT",
        1,
        closed_loop(host, port, "/bare/graphql", bare_graphql, json_headers, connections, seconds),
    )
    await scenario(
        "bookDelivery (JWT, everything it writes)",
        1,
        closed_loop(host, port, "/graphql", book("max"), auth, connections, seconds),
    )
    # An importer sends a few batches at once: with two per API process, one is computed
    # while the other waits on the database (one each left a third of the CPU idle).
    await scenario(
        "bookDeliveries x250", 250, closed_loop(host, port, "/graphql", book_many, auth, 4, seconds)
    )
    steady = await open_loop(host, port, "/graphql", book("steady"), auth, 100.0, seconds)

    header = ("req/s", "items/s", "p50 ms", "p99 ms", "errors", "vs bare", "cpu ms")
    print(f"\n{'scenario':44} " + " ".join(f"{h:>8}" for h in header))
    for name, result, items, cpu_ms in rows:
        print(
            f"{name:44} {result.rate:8.1f} {result.rate * items:9.1f} "
            f"{result.percentile(50) * 1000:8.1f} {result.percentile(99) * 1000:8.1f} "
            f"{result.errors:8d} {result.rate / baseline.rate:8.1%} {cpu_ms:8.2f}"
        )
    print(
        f"{'bookDelivery at a steady 100 req/s':44} {steady.rate:8.1f} {steady.rate:9.1f} "
        f"{steady.percentile(50) * 1000:8.1f} {steady.percentile(99) * 1000:8.1f} "
        f"{steady.errors:8d}"
    )


if __name__ == "__main__":
    main()
