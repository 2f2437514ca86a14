"""The transactional outbox: facts written in the same transaction as the change.

A dispatcher (a Celery task) later publishes undispatched rows, so a crash between
committing a change and announcing it loses nothing.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.core.models import OutboxEvent


def emit(session: Session, topic: str, payload: dict[str, Any], tenant_id: str | None) -> None:
    session.add(OutboxEvent(topic=topic, payload=payload, tenant_id=tenant_id))
