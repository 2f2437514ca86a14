"""Sending one webhook message: claim it, POST it signed, log the attempt, plan the next.

An attempt happens in three steps so no transaction stays open across the network call:

1. claim: a conditional UPDATE moves `next_attempt_at` a lease into the future, only if
   the message is still open and due. Exactly one caller wins, on PostgreSQL and
   SQLite alike, so a duplicated task, a replay and the sweeper never double-send.
2. send: POST with a timeout; no redirects followed (a redirect is a failure, as at Stripe).
3. record: the attempt row, then the message's new state: DELIVERED on any 2xx,
   otherwise FAILED with the next retry time, or DEAD once the schedule is exhausted.

If the process dies between 1 and 3 the lease expires and the sweeper tries again, so
a receiver may see a message twice (never zero times): receivers deduplicate on the
`webhook-id` header.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlmodel import Session, col, select, update

from services.core import logs, metrics
from services.core.db import transaction, utcnow
from services.core.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookMessageStatus,
)
from services.webhooks import targets
from services.webhooks.service import OPEN_STATUSES, abandon_open_messages
from services.webhooks.signing import signature_header

# Waits after the 1st, 2nd, ... failed attempt: ten attempts over a little more than
# three days, so a receiver that is down over a weekend still gets its events.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
# Each wait is stretched by up to this fraction, so retries after an outage spread out.
JITTER = 0.1
REQUEST_TIMEOUT_SECONDS = 10.0
# Longer than any request can take, so a lease only expires when its worker died.
LEASE = timedelta(seconds=60)
# Timers and clocks of different workers disagree a little; a task this early still runs.
EARLY_TOLERANCE = timedelta(seconds=1)
# The sweeper leaves a due message alone this long, for its own countdown task to take.
SWEEP_GRACE = timedelta(seconds=30)
RESPONSE_EXCERPT_BYTES = 1024
# An endpoint is disabled when it failed this many times in a row over at least this
# long without one success: one message's whole schedule failing is exactly that.
DISABLE_AFTER_FAILURES = len(RETRY_SCHEDULE) + 1
DISABLE_AFTER = timedelta(days=3)
USER_AGENT = "Lastmile-Webhooks/1.0"
logger = logs.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one call did. `status` is None when nothing was sent (not due, or settled)."""

    status: WebhookMessageStatus | None
    retry_in: timedelta | None = None


@dataclass(frozen=True)
class _Request:
    message_id: str
    endpoint_id: str
    tenant_id: str
    sandbox: bool
    url: str
    body: bytes
    headers: dict[str, str]
    at: datetime
    request_id: str | None = None


@dataclass(frozen=True)
class _Response:
    status_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver(
    message_id: str,
    *,
    clock: Callable[[], datetime] = utcnow,
    http: httpx.Client | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """Make one attempt at a message if it is due; safe to call any number of times."""
    request = _claim(message_id, clock())
    if request is None:
        return Outcome(status=None)
    if http is None:
        with httpx.Client(
            transport=targets.GuardedTransport(),
            timeout=REQUEST_TIMEOUT_SECONDS,
            follow_redirects=False,
        ) as client:
            response = _send(client, request)
    else:
        response = _send(http, request)
    outcome = _record(request, response, clock(), rng or random.Random())
    label = outcome.status.value.lower() if outcome.status else "none"
    metrics.WEBHOOK_ATTEMPTS.labels(label).inc()
    with logs.bound(request_id=request.request_id):
        logger.info(
            "webhook attempt",
            message_id=request.message_id,
            endpoint_id=request.endpoint_id,
            http_status=response.status_code,
            outcome=label,
            ms=response.duration_ms,
        )
    return outcome


def retry_delay(attempt_count: int, rng: random.Random) -> timedelta | None:
    """The wait after `attempt_count` failed attempts, or None when it is time to give up."""
    if attempt_count > len(RETRY_SCHEDULE):
        return None
    return RETRY_SCHEDULE[attempt_count - 1] * (1 + rng.uniform(0, JITTER))


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, plus the previous one while its rotation overlap lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        secrets.append(endpoint.previous_secret)
    return secrets


def due_message_ids(session: Session, now: datetime, limit: int = 1000) -> list[str]:
    """Open messages overdue by more than the grace: their task was lost or never sent."""
    return list(
        session.exec(
            select(WebhookMessage.id)
            .where(
                col(WebhookMessage.status).in_(OPEN_STATUSES),
                col(WebhookMessage.next_attempt_at) <= now - SWEEP_GRACE,
            )
            .order_by(col(WebhookMessage.next_attempt_at))
            .limit(limit)
        ).all()
    )


def _claim(message_id: str, now: datetime) -> _Request | None:
    with transaction() as session:
        claimed = session.exec(
            update(WebhookMessage)
            .where(
                col(WebhookMessage.id) == message_id,
                col(WebhookMessage.status).in_(OPEN_STATUSES),
                col(WebhookMessage.next_attempt_at) <= now + EARLY_TOLERANCE,
            )
            .values(next_attempt_at=now + LEASE)
        ).rowcount
        if claimed != 1:
            return None
        message = session.get(WebhookMessage, message_id)
        assert message is not None  # just claimed it
        endpoint = session.get(WebhookEndpoint, message.endpoint_id)
        assert endpoint is not None  # endpoints are never deleted as rows
        if not endpoint.enabled:
            message.status = WebhookMessageStatus.DEAD
            message.next_attempt_at = None
            session.add(message)
            return None
        body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(now.timestamp())
        return _Request(
            message_id=message.id,
            endpoint_id=endpoint.id,
            tenant_id=message.tenant_id,
            sandbox=message.sandbox,
            url=endpoint.url,
            body=body,
            headers={
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": message.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(
                    signing_secrets(endpoint, now), message.id, timestamp, body
                ),
            },
            at=now,
            request_id=message.request_id,
        )


def _send(client: httpx.Client, request: _Request) -> _Response:
    started = time.monotonic()
    try:
        with client.stream(
            "POST", request.url, content=request.body, headers=request.headers
        ) as response:
            excerpt = bytearray()
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                    break
            text = excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
            return _Response(response.status_code, text or None, None, _since(started))
    except httpx.HTTPError as error:
        if str(error).startswith(targets.NOT_SENT):  # the guard refused the address
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return _Response(None, None, message, _since(started))


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _record(request: _Request, response: _Response, now: datetime, rng: random.Random) -> Outcome:
    with transaction() as session:
        session.add(
            WebhookAttempt(
                tenant_id=request.tenant_id,
                sandbox=request.sandbox,
                message_id=request.message_id,
                endpoint_id=request.endpoint_id,
                at=request.at,
                url=request.url,
                status_code=response.status_code,
                response_excerpt=response.excerpt,
                error=response.error,
                duration_ms=response.duration_ms,
            )
        )
        message = session.get(WebhookMessage, request.message_id)
        assert message is not None
        message.attempt_count += 1
        message.last_attempt_at = request.at
        retry_in: timedelta | None = None
        if response.ok:
            message.status = WebhookMessageStatus.DELIVERED
            message.delivered_at = now
            message.next_attempt_at = None
            _record_success(session, request.endpoint_id)
        else:
            retry_in = retry_delay(message.attempt_count, rng)
            if retry_in is None:
                message.status = WebhookMessageStatus.DEAD
                message.next_attempt_at = None
            else:
                message.status = WebhookMessageStatus.FAILED
                message.next_attempt_at = now + retry_in
            session.add(message)
            session.flush()
            if _record_failure(session, request.endpoint_id, response, now):
                session.refresh(message)
                retry_in = None
        session.add(message)
        return Outcome(status=message.status, retry_in=retry_in)


def _record_success(session: Session, endpoint_id: str) -> None:
    session.exec(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id)
        .values(consecutive_failures=0, failing_since=None)
    )


def _record_failure(session: Session, endpoint_id: str, response: _Response, now: datetime) -> bool:
    """Count the failure against the endpoint; disable it if the streak is long and old.

    SQL increments rather than read-modify-write, so concurrent deliveries to one
    endpoint never lose a count. Returns whether the endpoint was disabled now.
    """
    session.exec(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id)
        .values(consecutive_failures=col(WebhookEndpoint.consecutive_failures) + 1)
    )
    session.exec(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.failing_since).is_(None))
        .values(failing_since=now)
    )
    last = f"HTTP {response.status_code}" if response.status_code else response.error
    disabled = session.exec(
        update(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.id) == endpoint_id,
            col(WebhookEndpoint.enabled).is_(True),
            col(WebhookEndpoint.consecutive_failures) >= DISABLE_AFTER_FAILURES,
            col(WebhookEndpoint.failing_since) <= now - DISABLE_AFTER,
        )
        .values(
            enabled=False,
            disabled_reason=f"Every delivery failed for {DISABLE_AFTER.days} days "
            f"(last: {last}). Fix the endpoint, enable it, then replay what it missed.",
            disabled_at=now,
            updated_at=now,
        )
    ).rowcount
    if disabled:
        abandon_open_messages(session, endpoint_id)
    return bool(disabled)
