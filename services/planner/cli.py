"""`lastmile plan`: plan an area's day now, on the same code path as the scheduled wave."""

from __future__ import annotations

import json
import sys

import click

from services.core.db import transaction, utcnow
from services.core.errors import UserErrors
from services.core.models import PlanRun, PlanRunStatus
from services.core.settings import get_settings
from services.planner import runs


def summary(run: PlanRun, area_code: str) -> dict[str, object]:
    return {
        "plan_run_id": run.id,
        "area": area_code,
        "date": run.date.isoformat(),
        "status": run.status,
        "deliveries": run.deliveries_considered,
        "planned": run.deliveries_planned,
        "inserted": run.deliveries_inserted,
        "unplanned": run.deliveries_unplanned,
        "routes": run.routes,
        "distance_km": round(run.distance_m / 1000, 3),
        "cost_minor": run.cost_minor,
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 2)
        if run.finished_at and run.started_at
        else None,
        "error": run.error,
    }


@click.command("plan")
@click.option("--area", "area_code", required=True, help="Service area code, e.g. demo.")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Delivery day (default: tomorrow in the area's time zone).",
)
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of the plan run.")
def plan(area_code: str, day: object, time_limit: float | None, as_json: bool) -> None:
    """Plan every open delivery of an area and day now."""
    limit = time_limit or get_settings().plan_time_limit_seconds
    try:
        with transaction() as session:
            run = runs.request_plan(session, area_code, day.date() if day else None, "cli", limit)  # type: ignore[attr-defined]
    except UserErrors as rejected:
        [error] = rejected.errors
        option = {"serviceArea": "--area", "timeLimitSeconds": "--time-limit"}[error.field[0]]
        raise click.BadParameter(error.message, param_hint=option) from None
    plan_day = run.date
    with click.progressbar(
        length=100,
        label=f"Planning {area_code} {plan_day}",
        file=sys.stderr,
        item_show_func=lambda shown: shown,
    ) as bar:
        shown = [0]

        def progress(current: PlanRun) -> None:
            elapsed = (utcnow() - current.started_at).total_seconds() if current.started_at else 0
            done = (
                100
                if current.status in (PlanRunStatus.DONE, PlanRunStatus.FAILED)
                else min(99, int(100 * elapsed / limit))
            )
            best = current.best_cost_minor
            status = f"{current.status}" + ("" if best is None else f", best {best / 100:.2f}")
            bar.update(done - shown[0], status)
            shown[0] = done

        result = runs.execute(run.id, on_progress=progress)
    report = summary(result, area_code)
    if as_json:
        click.echo(json.dumps(report))
    else:
        for key, value in report.items():
            click.echo(f"{key:>12}: {value}")
    if result.status == PlanRunStatus.FAILED:
        sys.exit(1)
