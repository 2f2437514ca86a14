"""A day of the demo area through the product's own path, on PostgreSQL.

usage: .venv/bin/python benchmarks/planner/demo_day.py [--per-merchant 500] [--vans 0]
           [--time-limit 10] [--windows 0.4] [--consolidation] [--seed 1]

Creates its own database next to LASTMILE_DATABASE_URL (default: the local PostgreSQL),
owned by the application's ordinary role, migrates it and drops it at the end. Seeds
the demo (`lastmile seed --demo`), has each of its two merchants book `--per-merchant`
deliveries for tomorrow through the booking service (the API's path), a share of them
in 2-hour windows, then plans the day exactly as `lastmile plan` does and prints the
plan run's figures with its load / solve / write seconds; `--consolidation` also runs
the consolidation report (`lastmile billing consolidation`). `--vans N` adds N more
vans of the demo's two kinds to each shift pattern, for days larger than the demo
fleet can carry (5,000 deliveries need about 60 more).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

BATCH = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-merchant", type=int, default=500)
    parser.add_argument("--vans", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--windows", type=float, default=0.4, help="share in 2-hour windows")
    parser.add_argument("--consolidation", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from services.core.migrate import scratch_database

    with scratch_database(f"lastmile_bench_planner_{os.getpid()}") as url:
        print(json.dumps(run(url, args)))


def run(url: str, args: argparse.Namespace) -> dict[str, object]:
    from services.api.seed import seed_demo
    from services.core.db import transaction, utcnow
    from services.core.migrate import upgrade
    from services.deliveries.booking import BookingRequest, book_many
    from services.deliveries.validation import Dropoff, Parcel, Recipient
    from services.planner import runs

    upgrade(url)
    with transaction() as session:
        demo = seed_demo(session, utcnow().date())
        if args.vans:
            _more_vans(session, args.vans)
    area = demo["area"]
    zone = ZoneInfo(area["timezone"])
    day = (datetime.now(zone) + timedelta(days=1)).date()
    rng = random.Random(args.seed)
    bounds = area["bounds"]
    # Addresses cluster around a few neighbourhood centres, as real ones do.
    centres = [
        (rng.uniform(bounds["south"], bounds["north"]), rng.uniform(bounds["west"], bounds["east"]))
        for _ in range(12)
    ]
    booked = 0
    began = time.monotonic()
    for merchant in demo["merchants"]:
        requests = []
        for k in range(args.per_merchant):
            lat, lng = rng.choice(centres)
            lat = min(bounds["north"], max(bounds["south"], rng.gauss(lat, 0.015)))
            lng = min(bounds["east"], max(bounds["west"], rng.gauss(lng, 0.02)))
            window = None
            if rng.random() < args.windows:
                opens = rng.randrange(9, 19)
                window = (
                    datetime.combine(day, datetime.min.time(), zone) + timedelta(hours=opens),
                    datetime.combine(day, datetime.min.time(), zone) + timedelta(hours=opens + 2),
                )
            requests.append(
                BookingRequest(
                    reference=f"{merchant['name'][:4]}-{k}",
                    service_area=area["code"],
                    dropoff=Dropoff(lat=round(lat, 5), lng=round(lng, 5)),
                    recipient=Recipient(name=f"Recipient {k}"),
                    parcel=Parcel(weight_grams=rng.randrange(200, 8_000)),
                    date=day,
                    time_window=window,
                )
            )
        for start in range(0, len(requests), BATCH):
            with transaction() as session:
                done = book_many(
                    session, merchant["tenant_id"], requests[start : start + BATCH], utcnow()
                )
            booked += sum(1 for d in done if not isinstance(d, Exception))
    booking_seconds = time.monotonic() - began

    with transaction() as session:
        plan_run = runs.request_plan(session, area["code"], day, "cli", args.time_limit)
    timings: dict[str, float] = {}
    began = time.monotonic()
    result = runs.execute(plan_run.id, timings=timings)
    report: dict[str, object] = {
        "booked": booked,
        "booking_seconds": round(booking_seconds, 1),
        "status": result.status,
        "error": result.error,
        "time_limit": args.time_limit,
        "planned": result.deliveries_planned,
        "unplanned": result.deliveries_unplanned,
        "routes": result.routes,
        "cost": result.cost_minor / 100 if result.cost_minor is not None else None,
        "seconds": round(time.monotonic() - began, 2),
        **{k: round(v, 2) for k, v in timings.items()},
    }
    if args.consolidation:
        from services.billing.consolidation import consolidation_report
        from services.planner.standalone import PlannerCostModel

        began = time.monotonic()
        with transaction() as session:
            report["consolidation"] = consolidation_report(
                session, area["code"], day, PlannerCostModel()
            )
        report["consolidation_seconds"] = round(time.monotonic() - began, 1)
    return report


def _more_vans(session, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` more vans per shift pattern, in the demo fleet's mix."""
    from sqlmodel import select

    from services.core.models import Shift, Vehicle

    templates = session.exec(select(Shift, Vehicle).join(Vehicle)).all()
    for k in range(count * 2):
        shift, vehicle = templates[k % len(templates)]
        fields = {k: v for k, v in vehicle.model_dump().items() if k != "id"}
        copy = Vehicle(**{**fields, "name": f"{vehicle.name} +{k}"})
        session.add(copy)
        session.flush()
        fields = {k: v for k, v in shift.model_dump().items() if k != "id"}
        extra = Shift(**{**fields, "vehicle_id": copy.id})
        session.add(extra)
    session.flush()


if __name__ == "__main__":
    main()
