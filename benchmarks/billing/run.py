"""Billing benchmark on PostgreSQL: ingest rate, closing and reconciling a big period.

    .venv/bin/python benchmarks/billing/run.py [--events 1000000] [--tenants 1000]

Creates its own database next to LASTMILE_DATABASE_URL (default: the local
PostgreSQL), owned by the application's ordinary role so that row-level security
applies as in production, migrates it, and drops it at the end. Prints one JSON object of figures.
Ingestion goes through `record_usage` (the production path: validation, COPY into a
staging table, account locks and tenant check, INSERT … ON CONFLICT … RETURNING) in
batches of 10,000 events per transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

BATCH = 10_000
METERS = ("deliveries", "parcel_kg", "api_requests", "active_recipients", "failed_attempts")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    args = parser.parse_args()

    from services.core.migrate import scratch_database

    # Owned by an ordinary role, as in production: row-level security applies to it.
    with scratch_database(f"lastmile_bench_billing_{os.getpid()}") as url:
        print(json.dumps(run(url, args.events, args.tenants)))


def run(url: str, events: int, tenants: int) -> dict[str, object]:
    from services.billing import invoicing, reconciliation
    from services.billing.plans import DEFAULT_PLAN, store_plan, subscribe
    from services.core.db import transaction
    from services.core.meters import Usage
    from services.core.migrate import upgrade
    from services.core.models import Tenant
    from services.core.usage import record_usage

    upgrade(url)
    with transaction() as session:
        plan = store_plan(session, DEFAULT_PLAN)
        ids = []
        for i in range(tenants):
            tenant = Tenant(name=f"Merchant {i}")
            session.add(tenant)
            session.flush()
            subscribe(session, tenant.id, plan, datetime(2026, 1, 1).date())
            ids.append(tenant.id)
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    seconds_in_month = 30 * 24 * 3600

    def event(n: int) -> Usage:
        meter = METERS[n % len(METERS)]
        return Usage(
            id=f"evt-{n}",
            tenant_id=ids[n % tenants],
            meter=meter,
            quantity=Decimal(rng.randint(1, 5000)) / 1000 if meter == "parcel_kg" else Decimal(1),
            at=start + timedelta(seconds=rng.randrange(seconds_in_month)),
            key=f"r{rng.randrange(500)}" if meter == "active_recipients" else None,
            area_code="demo",
        )

    ingest_seconds = 0.0
    for first in range(0, events, BATCH):
        batch = [event(n) for n in range(first, min(first + BATCH, events))]
        began = time.perf_counter()
        with transaction() as session:
            record_usage(session, batch)
        ingest_seconds += time.perf_counter() - began
        if first // BATCH % 10 == 0:
            print(f"ingested {first + len(batch):,}", file=sys.stderr)
    with transaction() as session:
        session.execute(text("ANALYZE usage_event"))

    began = time.perf_counter()
    with transaction() as session:
        report = invoicing.close_period(session, "2026-11", finalize=True)
    close_seconds = time.perf_counter() - began
    began = time.perf_counter()
    with transaction() as session:
        again = invoicing.close_period(session, "2026-11", finalize=True)
    rerun_seconds = time.perf_counter() - began
    began = time.perf_counter()
    with transaction() as session:
        result = reconciliation.reconcile(session, "2026-11")
    reconcile_seconds = time.perf_counter() - began
    return {
        "events": events,
        "tenants": tenants,
        "ingest_events_per_second": round(events / ingest_seconds),
        "close_seconds": round(close_seconds, 2),
        "invoices_finalized": report.finalized,
        "close_again_seconds": round(rerun_seconds, 2),
        "close_again_finalized": again.finalized,
        "reconcile_seconds": round(reconcile_seconds, 2),
        "findings": len(result.findings),
    }


if __name__ == "__main__":
    main()
