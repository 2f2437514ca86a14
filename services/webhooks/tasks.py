"""Celery tasks of webhooks (queue `webhooks`): dispatching the outbox, delivering, sweeping."""

from __future__ import annotations

from datetime import timedelta

from services.core.celery_app import celery_app
from services.core.db import transaction, utcnow
from services.webhooks import delivery, dispatch, retention

# Retries due within this wait ride a Celery countdown; later ones are left to the
# sweeper. Holding ETA tasks for hours pins them in worker memory, and Redis hands
# unacknowledged ones out again after its one-hour visibility timeout.
COUNTDOWN_HORIZON = timedelta(hours=1)
# One run drains at most this many batches, so a backlog cannot monopolise a worker.
MAX_BATCHES_PER_RUN = 50


@celery_app.task(name="webhooks.dispatch_outbox")
def dispatch_outbox() -> int:
    """Fan out committed outbox events into webhook messages; returns the events handled."""
    handled = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        with transaction() as session:
            batch = dispatch.dispatch_batch(session, utcnow())
        handled += batch.events
        if batch.events < dispatch.BATCH_SIZE:
            break
    return handled


@celery_app.task(name="webhooks.deliver")
def deliver_message(message_id: str) -> str | None:
    """One attempt at a message; schedules the next one itself when it is soon."""
    outcome = delivery.deliver(message_id)
    if outcome.retry_in is not None and outcome.retry_in <= COUNTDOWN_HORIZON:
        deliver_message.apply_async((message_id,), countdown=outcome.retry_in.total_seconds())
    return outcome.status


@celery_app.task(name="webhooks.retry_due")
def retry_due() -> int:
    """Re-enqueue overdue messages: long waits, lost tasks and expired leases end up here."""
    with transaction() as session:
        message_ids = delivery.due_message_ids(session, utcnow())
    for message_id in message_ids:
        deliver_message.delay(message_id)
    return len(message_ids)


@celery_app.task(name="webhooks.prune_history")
def prune_history() -> tuple[int, int]:
    """Forget dispatched outbox events and final messages past their retention."""
    return retention.prune(utcnow())
