"""How long webhook history is kept, and forgetting what is older.

An outbox event is only needed until it is dispatched (the messages made from it carry
their own payload), so dispatched events go after OUTBOX_RETENTION. A message that
reached a final state (delivered, or given up) and its attempt log are kept for
MESSAGE_RETENTION, the window in which merchants can list and replay them; open
messages are never pruned. Deletes go in batches so no transaction grows large.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import col

from services.core.db import transaction
from services.core.models import OutboxEvent, WebhookAttempt, WebhookMessage
from services.core.models.webhooks import WebhookMessageStatus

OUTBOX_RETENTION = timedelta(days=7)
MESSAGE_RETENTION = timedelta(days=30)
BATCH = 5000
FINAL_STATUSES = (WebhookMessageStatus.DELIVERED, WebhookMessageStatus.DEAD)


def prune(now: datetime) -> tuple[int, int]:
    """Forget old history; returns (outbox events, webhook messages) deleted."""
    return _prune_outbox(now - OUTBOX_RETENTION), _prune_messages(now - MESSAGE_RETENTION)


def _prune_outbox(before: datetime) -> int:
    deleted = 0
    while True:
        with transaction() as session:
            batch = select(OutboxEvent.id).where(  # type: ignore[call-overload]
                col(OutboxEvent.dispatched_at) < before
            )
            count = session.execute(
                delete(OutboxEvent).where(col(OutboxEvent.id).in_(batch.limit(BATCH)))
            ).rowcount  # type: ignore[attr-defined]
        deleted += count
        if count < BATCH:
            return deleted


def _prune_messages(before: datetime) -> int:
    deleted = 0
    while True:
        with transaction() as session:
            ids = list(
                session.execute(
                    select(WebhookMessage.id)  # type: ignore[call-overload]
                    .where(
                        col(WebhookMessage.status).in_(FINAL_STATUSES),
                        col(WebhookMessage.created_at) < before,
                    )
                    .limit(BATCH)
                ).scalars()
            )
            if ids:
                session.execute(
                    delete(WebhookAttempt).where(col(WebhookAttempt.message_id).in_(ids))
                )
                session.execute(delete(WebhookMessage).where(col(WebhookMessage.id).in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted
