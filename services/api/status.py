"""What an operator looks at first: `lastmile status`.

The dependencies (database, broker, Redis), which scheduler acts, how many messages
wait in each Celery queue, how far the outbox lags, each area's last planning wave and
the webhook endpoints that are failing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import click

from services.core import health, leader
from services.core.db import get_engine, transaction, utcnow
from services.core.outbox import backlog
from services.core.scheduler import LEASE
from services.planner.repository import last_waves
from services.webhooks.service import failing_endpoints


def collect(now: datetime) -> dict[str, Any]:
    checks = health.readiness()
    report: dict[str, Any] = {"ready": health.ready(checks), "checks": checks}
    report["queues"] = health.queue_depths()
    if checks["database"] != "ok":
        return report
    lease = leader.current(get_engine(), LEASE)
    report["scheduler"] = (
        None
        if lease is None
        else {
            "holder": lease.holder,
            "active": lease.expires_at > time.time(),
            "held_for_seconds": round(time.time() - lease.acquired_at, 1),
        }
    )
    with transaction() as session:
        outbox = backlog(session, now)
        report["outbox"] = {"pending": outbox.pending, "lag_seconds": round(outbox.lag_seconds, 1)}
        report["waves"] = {
            code: None
            if run is None
            else {
                "plan_run": run.id,
                "date": run.date.isoformat(),
                "trigger": run.trigger,
                "status": run.status.value,
                "requested_at": run.requested_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "planned": run.deliveries_planned,
                "unplanned": run.deliveries_unplanned,
            }
            for code, run in last_waves(session)
        }
        report["failing_webhook_endpoints"] = [
            {
                "endpoint": endpoint.id,
                "tenant": endpoint.tenant_id,
                "host": urlsplit(endpoint.url).hostname,  # no path or query: they may hold secrets
                "enabled": endpoint.enabled,
                "consecutive_failures": endpoint.consecutive_failures,
                "failing_since": endpoint.failing_since.isoformat()
                if endpoint.failing_since
                else None,
            }
            for endpoint in failing_endpoints(session)
        ]
    return report


def render(report: dict[str, Any]) -> str:
    lines = [f"ready: {'yes' if report['ready'] else 'NO'}"]
    lines += [f"  {name}: {state}" for name, state in report["checks"].items()]
    scheduler = report.get("scheduler")
    if "scheduler" in report:
        lines.append(
            "scheduler: none has run"
            if scheduler is None
            else f"scheduler: {scheduler['holder']} "
            f"({'active' if scheduler['active'] else 'lease EXPIRED'}, "
            f"for {scheduler['held_for_seconds']:g} s)"
        )
    lines.append("queues:")
    lines += [
        f"  {queue}: {'?' if depth is None else depth}" for queue, depth in report["queues"].items()
    ]
    if "outbox" in report:
        outbox = report["outbox"]
        lines.append(f"outbox: {outbox['pending']} pending, oldest {outbox['lag_seconds']:g} s old")
        lines.append("last wave per area:")
        for code, wave in report["waves"].items():
            lines.append(
                f"  {code}: none"
                if wave is None
                else f"  {code}: {wave['trigger']} for {wave['date']}, {wave['status']}, "
                f"{wave['planned']} planned, {wave['unplanned']} unplanned "
                f"(requested {wave['requested_at']})"
            )
        failing = report["failing_webhook_endpoints"]
        lines.append(f"failing webhook endpoints: {len(failing) or 'none'}")
        lines += [
            f"  {e['endpoint']} ({e['tenant']}, {e['host']}): {e['consecutive_failures']} "
            f"failures since {e['failing_since']}{'' if e['enabled'] else ', DISABLED'}"
            for e in failing
        ]
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Dependencies, queues, outbox lag, last waves, failing webhooks.

    Exits 1 when a dependency does not answer (as `/readyz` answers 503)."""
    import json

    report = collect(utcnow())
    click.echo(json.dumps(report) if as_json else render(report))
    if not report["ready"]:
        raise SystemExit(1)
