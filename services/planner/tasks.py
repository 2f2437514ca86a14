"""Celery tasks of the planner: executing plan runs and cutting the daily waves."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from services.core import areas
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from services.core.settings import get_settings
from services.planner import repository, runs

# A QUEUED run this old was probably never enqueued (a crash between commit and send).
STALE_QUEUED = timedelta(minutes=5)


@celery_app.task(name="planner.execute_plan_run")
def execute_plan_run(plan_run_id: str) -> str:
    return runs.execute(plan_run_id).status


@celery_app.task(name="planner.run_due_waves")
def run_due_waves() -> list[str]:
    """Start each area's wave once its cut-off has passed, and re-send stale queued runs."""
    with transaction() as session:
        started = due_waves(session, utcnow())
        stale = repository.stale_queued_runs(session, utcnow() - STALE_QUEUED)
    for run_id in {*started, *stale}:
        execute_plan_run.delay(run_id)
    return started


def due_waves(session: Session, now: datetime) -> list[str]:
    """Queue a plan run for tomorrow for every cut-off that has passed today (once each)."""
    queued = []
    for area in repository.service_areas(session):
        local_now = now.astimezone(ZoneInfo(area.timezone))
        tomorrow = areas.next_delivery_date(area, now)
        for cutoff in area.wave_cutoffs:
            if local_now.strftime("%H:%M") < cutoff:
                continue
            trigger = f"wave {cutoff}"
            if not repository.plan_run_exists(session, area.id, tomorrow, trigger):
                run = runs.request_plan(
                    session, area.code, tomorrow, trigger, get_settings().plan_time_limit_seconds
                )
                queued.append(run.id)
    return queued
