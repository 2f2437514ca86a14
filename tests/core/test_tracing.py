"""Traces: off unless configured; then API requests, database calls and tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import sys
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from services.core import tracing

exporter = InMemorySpanExporter()
assert tracing.configure("probe", exporter)
from services.api.app import create_app
from services.api import tasks
from services.core.celery_app import celery_app

with TestClient(create_app()) as client:
    assert client.get("/graphql/schema.graphql").status_code == 200
    assert client.get("/readyz").status_code == 200
celery_app.conf.task_always_eager = True
tasks.purge_idempotency_keys.delay()
import json
spans = exporter.get_finished_spans()
print(json.dumps([[span.name, dict(span.attributes or {})] for span in spans]))
"""


def test_requests_database_calls_and_tasks_are_traced_once_configured(db):
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=os.environ, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    spans = json.loads(probe.stdout.strip().splitlines()[-1])
    names = [name for name, _ in spans]
    assert "GET /graphql/schema.graphql" in names  # the request (readyz is not traced)
    assert any(attributes.get("db.system") == "postgresql" for _, attributes in spans)
    assert any(name.startswith("run/api.purge_idempotency_keys") for name in names)


def test_no_tracing_is_set_up_by_default(db):
    """(FastAPI itself imports OpenTelemetry, which is a no-op without a provider.)"""
    probe = (
        "import os\n"
        "os.environ['LASTMILE_PROCESS'] = 'api'\n"
        "from opentelemetry import trace\n"
        "from services.api.app import create_server_app\n"
        "from services.core import tracing\n"
        "create_server_app()\n"
        "print(tracing.enabled(), type(trace.get_tracer_provider()).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=os.environ, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False ProxyTracerProvider"
