"""The Celery application shared by every worker process.

Tasks are acknowledged late and rejected when a worker dies, so a task in flight
when a process crashes is delivered again; every task is written to be safe to run
twice. Each service's tasks go to its own queue so they can be scaled separately.
"""

from __future__ import annotations

from celery import Celery

from services.core import observability  # noqa: F401  (task metrics, request ids, logs)
from services.core.settings import get_settings

QUEUES = ("planner", "billing", "webhooks")


def make_celery() -> Celery:
    settings = get_settings()
    app = Celery(
        "lastmile",
        broker=settings.resolved_broker_url(),
        include=[
            "services.planner.tasks",
            "services.webhooks.tasks",
            "services.api.tasks",
            "services.billing.tasks",
        ],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="planner",
        # Each service's tasks on its own queue; the API's few housekeeping jobs ride
        # with its webhooks.
        task_routes={
            **{f"{queue}.*": {"queue": queue} for queue in QUEUES},
            "api.*": {"queue": "webhooks"},
        },
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        worker_hijack_root_logger=False,
        # Several schedulers may run, one acts (services.core.scheduler).
        beat_scheduler="services.core.scheduler:LeaderScheduler",
        beat_schedule={
            "planner-waves": {"task": "planner.run_due_waves", "schedule": 60.0},
            # Route-cost shares: plan runs kick it after commit; this catches lost kicks.
            "billing-allocate-route-shares": {
                "task": "billing.allocate_route_shares",
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            "billing-close-period": {"task": "billing.close_due_period", "schedule": 3600.0},
            "billing-reconcile": {"task": "billing.reconcile", "schedule": 86400.0},
            "api-purge-idempotency-keys": {
                "task": "api.purge_idempotency_keys",
                "schedule": 3600.0,
            },
            # Webhooks: the outbox sweep and the retry sweep; a stale tick is worthless.
            "webhooks-dispatch-outbox": {
                "task": "webhooks.dispatch_outbox",
                "schedule": 5.0,
                "options": {"expires": 5.0},
            },
            "webhooks-prune-history": {"task": "webhooks.prune_history", "schedule": 3600.0},
            "webhooks-retry-due": {
                "task": "webhooks.retry_due",
                "schedule": 30.0,
                "options": {"expires": 30.0},
            },
        },
    )
    return app


celery_app = make_celery()
