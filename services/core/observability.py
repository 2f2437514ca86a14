"""Celery's side of observability: each task's metrics, its request id, its logs.

Connected to Celery's signals when the Celery app is made (`services.core.celery_app`):
a task sent while a request id is bound carries it in its headers, with the time it
was sent; the worker binds it again around the task (or the task's own id when it has
none), and counts the task, its run time and its wait in the queue.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import signals

from services.core import logs, metrics

_REQUEST_HEADER = "lastmile_request_id"
_SENT_HEADER = "lastmile_sent_at"
_started: dict[str, tuple[float, Any]] = {}


@signals.before_task_publish.connect
def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    request_id = logs.request_id()
    if request_id is not None:
        headers.setdefault(_REQUEST_HEADER, request_id)
    headers.setdefault(_SENT_HEADER, time.time())


def _header(task: Any, name: str) -> Any:
    value = getattr(task.request, name, None)
    if value is None:
        value = (getattr(task.request, "headers", None) or {}).get(name)
    return value


def _queue(task: Any) -> str:
    info = getattr(task.request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "local")


@signals.task_prerun.connect
def _begin(task_id: str = "", task: Any = None, **_: Any) -> None:
    if task is None:
        return
    sent_at = _header(task, _SENT_HEADER)
    queue = _queue(task)
    if isinstance(sent_at, int | float):
        metrics.TASK_WAIT.labels(queue).observe(max(0.0, time.time() - sent_at))
    context = logs.bound(
        request_id=_header(task, _REQUEST_HEADER) or f"task_{task_id}", task=task.name
    )
    context.__enter__()
    _started[task_id] = (time.monotonic(), context)


@signals.task_postrun.connect
def _end(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if task is None or started is None:
        return
    began, context = started
    queue = _queue(task)
    metrics.TASK_DURATION.labels(queue, task.name).observe(time.monotonic() - began)
    metrics.TASKS.labels(queue, task.name, (state or "UNKNOWN").lower()).inc()
    context.__exit__(None, None, None)


@signals.worker_process_shutdown.connect
def _forget_process(**_: Any) -> None:
    metrics.process_exited(os.getpid())


@signals.worker_process_init.connect
def _trace_process(**_: Any) -> None:
    """Each worker process traces on its own (OpenTelemetry's exporters do not survive a
    fork)."""
    from services.core import tracing

    tracing.configure(os.environ.get("LASTMILE_PROCESS", "worker"))


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    """Celery's own logging setup is replaced by ours (JSON lines)."""
    logs.configure(os.environ.get("LASTMILE_PROCESS", "worker"))
