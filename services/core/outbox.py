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

# Set in session.info when a transaction wrote outbox rows, so that whoever publishes
# them can be woken once it commits.
WROTE_EVENTS = "outbox.wrote_events"


def emit(session: Session, topic: str, payload: dict[str, Any], tenant_id: str | None) -> None:
    emit_all(session, [(topic, payload, tenant_id)])


def emit_all(session: Session, events: list[tuple[str, dict[str, Any], str | None]]) -> None:
    """Write facts (topic, payload, tenant) in one go, in the session's transaction."""
    if not events:
        return
    now = utcnow()
    insert_rows(
        session,
        OutboxEvent.__table__,  # type: ignore[attr-defined]
        [
            {
                "id": new_id("obx"),
                "tenant_id": tenant_id,
                "topic": topic,
                "payload": payload,
                "created_at": now,
                "dispatched_at": None,
            }
            for topic, payload, tenant_id in events
        ],
    )
    session.info[WROTE_EVENTS] = True
