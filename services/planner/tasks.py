"""Celery tasks of the planner: executing plan runs and cutting the daily waves."""

from __future__ import annotations

from datetime import date, datetime, timedelta
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


@celery_app.task(name="planner.insert_bookings")
def insert_bookings(area_id: str, day: str) -> str | None:
    """Insert an area-day's new bookings into its routes that have not left, now (sent
    after a booking commits); None when the day has no such route yet."""
    with transaction() as session:
        run = runs.request_insertion(session, area_id, date.fromisoformat(day))
    return None if run is None else runs.execute(run.id).status


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
    """Queue the plan runs of every wave cut-off that has passed today, once each.

    Each wave plans what its area's open days need: today's deliveries still BOOKED
    (same-day bookings) while the delivery day lasts, at the latest cut-off passed; and
    tomorrow, at the day's last cut-off.
    """
    queued = []
    limit = get_settings().plan_time_limit_seconds
    for area in repository.service_areas(session):
        local_now = now.astimezone(ZoneInfo(area.timezone))
        passed = sorted(c for c in area.wave_cutoffs if local_now.strftime("%H:%M") >= c)
        if not passed:
            continue
        days = []
        today = local_now.date()
        if local_now.time() < area.day_end and repository.has_open_deliveries(
            session, area.id, today
        ):
            days.append((today, passed[-1]))
        if passed[-1] == max(area.wave_cutoffs):
            days.append((areas.next_delivery_date(area, now), passed[-1]))
        for day, cutoff in days:
            trigger = f"wave {cutoff}"
            if not repository.plan_run_exists(session, area.id, day, trigger):
                queued.append(runs.request_plan(session, area.code, day, trigger, limit).id)
    return queued
