"""Plan runs through Celery, with a real broker and a real worker."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from sqlmodel import delete, select

from services.api.seed import seed_demo
from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from services.core.models import Delivery, DeliveryStatus, PlanRun, PlanRunStatus
from services.deliveries import booking, validation
from services.planner import runs, tasks
from tests.factories import DEMO_ZONE, local_today
from tests.planner import world


@pytest.fixture
def worker(db):
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="threads", concurrency=1, perform_ping_check=False, queues=["planner"]
    ) as running:
        yield running


def _book(session, tenant_id: str, count: int, now: datetime) -> list[str]:
    ids = []
    for i in range(count):
        request = booking.BookingRequest(
            reference=f"order-{i}",
            service_area="demo",
            dropoff=validation.Dropoff(lat=40.70 + i * 0.005, lng=-74.0 + i * 0.004),
            recipient=validation.Recipient(name=f"Person {i}"),
            parcel=validation.Parcel(weight_grams=2000),
        )
        ids.append(booking.book(session, tenant_id, request, now).id)
    return ids


def test_a_queued_plan_run_is_executed_by_a_worker(worker):
    now = utcnow()
    with transaction() as session:
        demo = seed_demo(session, now.date())
        ids = _book(session, demo["merchants"][0]["tenant_id"], 8, now)
        day = session.get(Delivery, ids[0]).date
        run = runs.request_plan(session, "demo", day, "test", time_limit=2)
    tasks.execute_plan_run.delay(run.id)

    deadline = time.monotonic() + 90
    status = PlanRunStatus.QUEUED
    while time.monotonic() < deadline and status not in (PlanRunStatus.DONE, PlanRunStatus.FAILED):
        time.sleep(0.5)
        with transaction() as session:
            status = session.get(PlanRun, run.id).status
    assert status == PlanRunStatus.DONE
    with transaction() as session:
        statuses = session.exec(select(Delivery.status).where(Delivery.id.in_(ids))).all()
    assert set(statuses) == {DeliveryStatus.PLANNED}


def test_a_wave_is_queued_once_after_its_cutoff(db):
    with transaction() as session:
        seed_demo(session, utcnow().date())
    # 17:59 and 18:01 today in New York: the wave plans tomorrow.
    today = local_today()
    before_cutoff = datetime(today.year, today.month, today.day, 17, 59, tzinfo=DEMO_ZONE)
    after_cutoff = before_cutoff + timedelta(minutes=2)
    with transaction() as session:
        assert tasks.due_waves(session, before_cutoff) == []
        queued = tasks.due_waves(session, after_cutoff)
        assert len(queued) == 1
        assert tasks.due_waves(session, after_cutoff + timedelta(minutes=5)) == []
        run = session.get(PlanRun, queued[0])
        assert run.date == today + timedelta(days=1)
        assert run.trigger == "wave 18:00"


def test_each_wave_also_plans_the_same_day_deliveries_still_open(db):
    """A same-day booking is planned by the next wave of its own day; the day's last
    wave also plans tomorrow. Once each, and only while the delivery day lasts."""
    day = world.DAY
    with transaction() as session:
        area = world.area(session)
        area.wave_cutoffs = ["10:00", "18:00"]
        world.van(session, area)
        world.delivery(session, area, world.tenant(session))
    morning = datetime.combine(day, datetime.min.time(), world.ZONE) + timedelta(
        hours=10, minutes=1
    )
    with transaction() as session:
        queued = tasks.due_waves(session, morning)
        assert [
            (session.get(PlanRun, i).date, session.get(PlanRun, i).trigger) for i in queued
        ] == [(day, "wave 10:00")]
        assert tasks.due_waves(session, morning + timedelta(minutes=5)) == []
        evening = morning + timedelta(hours=8)
        queued = tasks.due_waves(session, evening)
        runs_queued = sorted(
            (session.get(PlanRun, i).date, session.get(PlanRun, i).trigger) for i in queued
        )
        assert runs_queued == [(day, "wave 18:00"), (day + timedelta(days=1), "wave 18:00")]
        night = evening + timedelta(hours=3, minutes=30)  # 21:31: the day is over
        session.exec(delete(PlanRun))
        queued = tasks.due_waves(session, night)
        assert [session.get(PlanRun, i).date for i in queued] == [day + timedelta(days=1)]
