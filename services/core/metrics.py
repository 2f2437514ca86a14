"""Prometheus metrics of every process (prometheus-client).

Counters and histograms live here so that each package records its own facts
(bookings, plan runs, webhook attempts, period closes) without knowing who serves
them. When `PROMETHEUS_MULTIPROC_DIR` names a directory (set before this module is
first imported: `lastmile serve` and `lastmile worker` do it), every process of a
machine writes its samples there and any of them serves the sum (prometheus-client's
multi-process mode): the API's processes at `/metrics`, a worker's on its metrics
port. Otherwise a process serves its own. Facts that are a query away (queue depth,
outbox lag) are read when scraped (`services.api.observability`).

Labels are bounded: routes are templates, GraphQL operations are root field names,
never anything a client chose.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LONG = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

HTTP_REQUESTS = Counter(
    "lastmile_http_requests", "HTTP requests by route template and status.", ["route", "status"]
)
HTTP_LATENCY = Histogram(
    "lastmile_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=_LATENCY,
)
GRAPHQL_OPERATIONS = Counter(
    "lastmile_graphql_operations",
    "GraphQL operations by root field and outcome (ok, user_error, error).",
    ["operation", "outcome"],
)
GRAPHQL_LATENCY = Histogram(
    "lastmile_graphql_operation_duration_seconds",
    "GraphQL operation latency by root field.",
    ["operation"],
    buckets=_LATENCY,
)
ERRORS = Counter(
    "lastmile_errors", "Errors by code: GraphQL error and userError codes, HTTP 5xx.", ["code"]
)
THROTTLED = Counter(
    "lastmile_throttled_requests",
    "Requests refused for a rate or cost limit (graphql, http).",
    ["kind"],
)
BOOKINGS = Counter("lastmile_bookings", "Deliveries booked (committed).", ["mode"])
PLAN_RUNS = Counter(
    "lastmile_plan_runs", "Plan runs finished, by trigger and status.", ["trigger", "status"]
)
PLAN_RUN_DURATION = Histogram(
    "lastmile_plan_run_duration_seconds",
    "Plan runs from start to written.",
    ["trigger"],
    buckets=_LONG,
)
PLAN_RUN_COST = Gauge(
    "lastmile_plan_run_cost_minor",
    "Cost of the area's last plan run, in minor units.",
    ["area"],
    multiprocess_mode="mostrecent",
)
PLAN_RUN_UNASSIGNED = Gauge(
    "lastmile_plan_run_unassigned",
    "Deliveries the area's last plan run left unplanned.",
    ["area"],
    multiprocess_mode="mostrecent",
)
TASKS = Counter(
    "lastmile_celery_tasks",
    "Celery tasks run, by queue, task and outcome.",
    ["queue", "task", "outcome"],
)
TASK_DURATION = Histogram(
    "lastmile_celery_task_duration_seconds",
    "Celery task run time.",
    ["queue", "task"],
    buckets=_LONG,
)
TASK_WAIT = Histogram(
    "lastmile_celery_task_wait_seconds",
    "From a task's publication to its start (time in the queue).",
    ["queue"],
    buckets=_LONG,
)
WEBHOOK_ATTEMPTS = Counter(
    "lastmile_webhook_attempts", "Webhook delivery attempts by outcome.", ["outcome"]
)
PERIOD_CLOSES = Counter("lastmile_period_closes", "Billing period closes by result.", ["result"])
RECONCILIATIONS = Counter(
    "lastmile_reconciliations", "Reconciliation runs by result (clean, findings).", ["result"]
)
RECONCILIATION_FINDINGS = Gauge(
    "lastmile_reconciliation_findings",
    "Findings of the last reconciliation.",
    multiprocess_mode="mostrecent",
)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(directory: Path) -> None:
    """Empty (or create) the directory processes will share; call it before any of
    them starts, and before this module is imported (it names the directory by
    `PROMETHEUS_MULTIPROC_DIR`)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def process_exited(pid: int) -> None:
    """Forget a dead process's live gauges (multi-process mode)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The text exposition of every process's metrics, and of `extra` collectors."""
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    collectors = list(extra)
    if collectors:
        scraped = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            scraped.register(collector)
        body += generate_latest(scraped)
    return body, CONTENT_TYPE_LATEST
