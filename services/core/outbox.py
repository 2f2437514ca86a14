"""The transactional outbox: facts written in the same transaction as the change.

A dispatcher (a Celery task) later publishes undispatched rows, so a crash between
committing a change and announcing it loses nothing.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.core.db import insert_rows, utcnow
from services.core.ids import new_id
from services.core.models import OutboxEvent
from services.core.principal import Merchant

# Set in session.info when a transaction wrote outbox rows, so that whoever publishes
# them can be woken once it commits.
WROTE_EVENTS = "outbox.wrote_events"


def emit(session: Session, topic: str, payload: dict[str, Any], merchant: Merchant | None) -> None:
    emit_all(session, [(topic, payload, merchant)])


def emit_all(session: Session, events: list[tuple[str, dict[str, Any], Merchant | None]]) -> None:
    """Write facts (topic, payload, and the merchant and mode they concern, or None for
    the platform's) in one go, in the session's transaction."""
    if not events:
        return
    now = utcnow()
    insert_rows(
        session,
        OutboxEvent.__table__,  # type: ignore[attr-defined]
        [
            {
                "id": new_id("obx"),
                "tenant_id": merchant.tenant_id if merchant else None,
                "sandbox": merchant.sandbox if merchant else False,
                "topic": topic,
                "payload": payload,
                "created_at": now,
                "dispatched_at": None,
            }
            for topic, payload, merchant in events
        ],
    )
    session.info[WROTE_EVENTS] = True
