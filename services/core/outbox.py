"""The transactional outbox: facts written in the same transaction as the change.

A dispatcher (a Celery task) later publishes undispatched rows, so a crash between
committing a change and announcing it loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.core import logs
from services.core.db import insert_rows, utcnow
from services.core.ids import new_id
from services.core.models import OutboxEvent
from services.core.principal import Merchant

# Set in session.info when a transaction wrote outbox rows, so that whoever publishes
# them can be woken once it commits.
WROTE_EVENTS = "outbox.wrote_events"


def emit(session: Session, topic: str, payload: dict[str, Any], merchant: Merchant | None) -> None:
    emit_all(session, [(topic, payload, merchant)])


def emit_all(
    session: Session,
    events: list[tuple[str, dict[str, Any], Merchant | None]],
    request_ids: Sequence[str | None] | None = None,
) -> None:
    """Write facts (topic, payload, and the merchant and mode they concern, or None for
    the platform's) in one go, in the session's transaction. Each carries the request
    id it follows: the current one, or one per event (`request_ids`) when a job acts on
    what several requests began."""
    if not events:
        return
    now = utcnow()
    ids = request_ids if request_ids is not None else [logs.request_id()] * len(events)
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
                "request_id": request_id,
            }
            for (topic, payload, merchant), request_id in zip(events, ids, strict=True)
        ],
    )
    session.info[WROTE_EVENTS] = True


@dataclass(frozen=True)
class Backlog:
    """Committed events not yet dispatched, and how long the oldest has waited."""

    pending: int
    lag_seconds: float


def backlog(session: Session, now: datetime) -> Backlog:
    pending, oldest = session.exec(
        select(func.count(), func.min(OutboxEvent.created_at)).where(
            col(OutboxEvent.dispatched_at).is_(None)
        )
    ).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite's aggregate forgets the zone
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return Backlog(pending, 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
