"""From the outbox to webhook messages, and the after-commit signals that keep latency low.

`dispatch_batch` claims committed, undispatched outbox rows (skipping rows another
dispatcher holds), creates one message per subscribed endpoint of the event's tenant
and marks the rows dispatched, all in the caller's transaction: either every message
of an event exists and the event is marked, or neither. A process dying anywhere
leaves the row undispatched for the next sweep.

Publishing to Celery happens only after a commit, through SQLAlchemy session events
installed when this module is imported: a commit that wrote outbox rows asks for a
dispatch right away, and a commit that created or replayed messages asks for their
delivery. Losing those signals (broker down, process killed) only costs latency; the
periodic sweeps find the same work in the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from services.core import logs
from services.core.celery_app import celery_app
from services.core.models import OutboxEvent, WebhookEndpoint, WebhookMessage
from services.core.outbox import WROTE_EVENTS
from services.core.principal import LIVE, SANDBOX, Merchant
from services.webhooks.events import is_known

logger = logging.getLogger(__name__)
events_log = logs.get_logger(__name__)

BATCH_SIZE = 200
_DELIVER = "webhooks.deliver_after_commit"


@dataclass
class Dispatched:
    events: int = 0
    message_ids: list[str] = field(default_factory=list)


def dispatch_batch(session: Session, now: datetime, limit: int = BATCH_SIZE) -> Dispatched:
    """Fan out up to `limit` undispatched outbox events, oldest first.

    Platform events (no tenant) and topics outside the catalogue are marked dispatched
    without messages: they are not for merchants.
    """
    rows = session.exec(
        select(OutboxEvent)
        .where(col(OutboxEvent.dispatched_at).is_(None))
        .order_by(col(OutboxEvent.created_at), col(OutboxEvent.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    result = Dispatched(events=len(rows))
    subscribers: dict[Merchant, list[WebhookEndpoint]] = {}
    for row in rows:
        row.dispatched_at = now
        session.add(row)
        if row.tenant_id is None or not is_known(row.topic):
            continue
        sent = len(result.message_ids)
        if _names_another_tenant(row.payload, row.tenant_id):
            logger.error("Outbox event %s names another tenant; not sent to merchants.", row.id)
            continue
        owner = Merchant(row.tenant_id, row.sandbox)
        if owner not in subscribers:
            subscribers[owner] = _enabled_endpoints(session, owner)
        for endpoint in subscribers[owner]:
            if row.topic not in endpoint.event_types:
                continue
            message = WebhookMessage(
                tenant_id=row.tenant_id,
                sandbox=row.sandbox,
                endpoint_id=endpoint.id,
                event_id=row.id,
                event_type=row.topic,
                payload=envelope(row),
                next_attempt_at=now,
                created_at=now,
                request_id=row.request_id,
            )
            session.add(message)
            result.message_ids.append(message.id)
        with logs.bound(request_id=row.request_id):
            events_log.info(
                "outbox event dispatched",
                event_id=row.id,
                topic=row.topic,
                messages=len(result.message_ids) - sent,
            )
    deliver_after_commit(session, result.message_ids)
    return result


def envelope(row: OutboxEvent) -> dict[str, Any]:
    """What the merchant receives: the event's id, type, time, mode and its own data."""
    return {
        "id": row.id,
        "type": row.topic,
        "mode": SANDBOX if row.sandbox else LIVE,
        "created_at": row.created_at.isoformat(),
        "data": row.payload,
    }


def deliver_after_commit(session: Session, message_ids: Iterable[str]) -> None:
    """Enqueue `webhooks.deliver` for these messages once (and only if) the session commits."""
    session.info.setdefault(_DELIVER, []).extend(message_ids)


def _enabled_endpoints(session: Session, owner: Merchant) -> list[WebhookEndpoint]:
    """The endpoints that receive the merchant's events of its mode."""
    return list(
        session.exec(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == owner.tenant_id,
                WebhookEndpoint.sandbox == owner.sandbox,
                col(WebhookEndpoint.enabled).is_(True),
                col(WebhookEndpoint.deleted_at).is_(None),
            )
        ).all()
    )


def _names_another_tenant(payload: Any, tenant_id: str) -> bool:
    """A defensive check: a payload mentioning a different `tenant_id` anywhere is a bug."""
    if isinstance(payload, dict):
        if payload.get("tenant_id", tenant_id) != tenant_id:
            return True
        return any(_names_another_tenant(value, tenant_id) for value in payload.values())
    if isinstance(payload, list):
        return any(_names_another_tenant(value, tenant_id) for value in payload)
    return False


KICK_INTERVAL = 1.0  # seconds between dispatch kicks from one process
_kick_runs_at = float("-inf")  # when the last kick sent will run (monotonic clock)
_kick_lock = threading.Lock()


def _kick_countdown() -> float | None:
    """Seconds to delay a dispatch kick for a commit made now; None when a kick already
    sent will run after now, and so sees this commit's rows.

    Kicks are coalesced, never dropped: at most one runs per KICK_INTERVAL per process,
    and every commit is followed by one.
    """
    global _kick_runs_at
    with _kick_lock:
        now = time.monotonic()
        if _kick_runs_at > now:
            return None
        countdown = max(0.0, _kick_runs_at + KICK_INTERVAL - now)
        _kick_runs_at = now + countdown
        return countdown


@event.listens_for(OrmSession, "after_commit")
def _publish_after_commit(session: OrmSession) -> None:
    kick = session.info.pop(WROTE_EVENTS, False)
    message_ids = session.info.pop(_DELIVER, [])
    try:
        for message_id in message_ids:
            celery_app.send_task("webhooks.deliver", args=[message_id])
        # One kick covers every row committed before the dispatch runs, so under load
        # a kick per KICK_INTERVAL is enough; the periodic sweep catches the rest.
        if kick and (countdown := _kick_countdown()) is not None:
            celery_app.send_task("webhooks.dispatch_outbox", countdown=countdown or None)
    except Exception:  # the broker being down must not fail a committed change
        logger.warning("Could not enqueue webhook work; the periodic sweep will.", exc_info=True)


@event.listens_for(OrmSession, "after_rollback")
def _forget_after_rollback(session: OrmSession) -> None:
    session.info.pop(WROTE_EVENTS, None)
    session.info.pop(_DELIVER, None)
