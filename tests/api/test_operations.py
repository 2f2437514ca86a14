"""What operators watch: readiness apart from liveness, and `lastmile status`."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from services.api.seed import seed_demo
from services.cli import main
from services.core import leader, outbox
from services.core.db import get_engine, transaction, utcnow
from services.core.models import PlanRunStatus, WebhookEndpoint
from services.core.settings import get_settings
from services.planner import runs


def test_ready_when_the_database_and_the_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "redis": "not configured"},
    }
    assert client.get("/livez").json() == {"status": "ok"}


def test_not_ready_when_the_broker_is_unreachable_yet_alive(client, monkeypatch):
    monkeypatch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
    from services.core.celery_app import celery_app

    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok" and checks["redis"] != "ok"
    assert "127.0.0.1:1/0" not in json.dumps(checks)  # no connection strings
    assert client.get("/livez").status_code == 200


def test_status_shows_the_scheduler_queues_outbox_lag_waves_and_failing_endpoints(db):
    now = utcnow()
    with transaction() as session:
        demo = seed_demo(session, now.date())
        tenant = demo["merchants"][0]["tenant_id"]
        outbox.emit(session, "delivery.booked", {"id": "dlv_1"}, None)
        wave = runs.request_plan(session, "demo", None, "wave 18:00", 1.0, now)
        wave.status = PlanRunStatus.DONE
        wave.deliveries_planned = 3
        session.add(
            WebhookEndpoint(
                tenant_id=tenant,
                url="https://hooks.example.com/in?token=s3cret",
                event_types=["delivery.booked"],
                secret="whsec_x",
                consecutive_failures=4,
                failing_since=now - timedelta(hours=1),
            )
        )
    leader.try_acquire(get_engine(), "scheduler", "host:42:abc", 1.0, 4e9)

    result = CliRunner().invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ready"] is True
    assert report["scheduler"]["holder"] == "host:42:abc" and report["scheduler"]["active"]
    assert set(report["queues"]) == {"planner", "billing", "webhooks"}
    assert report["outbox"]["pending"] == 1
    assert report["waves"]["demo"]["plan_run"] == wave.id
    assert report["waves"]["demo"]["planned"] == 3
    [failing] = report["failing_webhook_endpoints"]
    assert failing["host"] == "hooks.example.com" and failing["consecutive_failures"] == 4
    assert "s3cret" not in result.output

    text = CliRunner().invoke(main, ["status"])
    assert text.exit_code == 0
    assert "outbox: 1 pending" in text.output and "demo: wave 18:00" in text.output


def test_status_without_any_wave_yet(db):
    with transaction() as session:
        seed_demo(session, utcnow().date())
    report = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
    assert report["waves"] == {"demo": None}
    assert report["outbox"] == {"pending": 0, "lag_seconds": 0.0}
