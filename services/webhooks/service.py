"""The rules around a merchant's webhook endpoints and messages, and the tenant-filtered queries.

Every function takes the caller (its tenant and mode) and only ever finds rows of that
tenant in that mode, so another tenant's endpoint or message, and the other mode's,
look exactly like one that does not exist. Nothing here commits: the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select, update

from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookMessageStatus,
)
from services.core.principal import Merchant
from services.webhooks import targets
from services.webhooks.dispatch import deliver_after_commit
from services.webhooks.events import EVENT_TYPES, is_known
from services.webhooks.signing import new_secret

MAX_URL_LENGTH = 2048
# Plain http is accepted only where a merchant develops locally; everything else is https.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)
OPEN_STATUSES = (WebhookMessageStatus.PENDING, WebhookMessageStatus.FAILED)


def create_endpoint(
    session: Session, merchant: Merchant, url: str, event_types: Sequence[str], now: datetime
) -> WebhookEndpoint:
    """A new, enabled endpoint with a fresh secret (the caller shows it to the merchant once)."""
    errors = _url_errors(url) + _event_type_errors(event_types)
    if errors:
        raise UserErrors(errors)
    endpoint = WebhookEndpoint(
        tenant_id=merchant.tenant_id,
        sandbox=merchant.sandbox,
        url=url.strip(),
        event_types=_unique(event_types),
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(
    session: Session,
    merchant: Merchant,
    endpoint_id: str,
    url: str | None,
    event_types: Sequence[str] | None,
    now: datetime,
) -> WebhookEndpoint:
    """Change where events go or which ones; messages already created keep their endpoint."""
    endpoint = _require_endpoint(session, merchant, endpoint_id)
    errors = (_url_errors(url) if url is not None else []) + (
        _event_type_errors(event_types) if event_types is not None else []
    )
    if errors:
        raise UserErrors(errors)
    if url is not None:
        endpoint.url = url.strip()
    if event_types is not None:
        endpoint.event_types = _unique(event_types)
    endpoint.updated_at = now
    session.add(endpoint)
    return endpoint


def delete_endpoint(session: Session, merchant: Merchant, endpoint_id: str, now: datetime) -> None:
    """Stop sending to an endpoint for good; its delivery log is kept."""
    endpoint = _require_endpoint(session, merchant, endpoint_id)
    endpoint.deleted_at = now
    endpoint.enabled = False
    endpoint.disabled_reason = "Deleted."
    endpoint.disabled_at = now
    endpoint.updated_at = now
    session.add(endpoint)
    abandon_open_messages(session, endpoint.id)


def enable_endpoint(
    session: Session, merchant: Merchant, endpoint_id: str, now: datetime
) -> WebhookEndpoint:
    """Send again, with a clean failure record; messages given up on stay so until replayed."""
    endpoint = _require_endpoint(session, merchant, endpoint_id)
    endpoint.enabled = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    endpoint.updated_at = now
    session.add(endpoint)
    return endpoint


def disable_endpoint(
    session: Session, merchant: Merchant, endpoint_id: str, now: datetime
) -> WebhookEndpoint:
    endpoint = _require_endpoint(session, merchant, endpoint_id)
    if endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = "Disabled through the API."
        endpoint.disabled_at = now
        endpoint.updated_at = now
        session.add(endpoint)
        abandon_open_messages(session, endpoint.id)
    return endpoint


def rotate_secret(
    session: Session, merchant: Merchant, endpoint_id: str, overlap: timedelta, now: datetime
) -> WebhookEndpoint:
    """A new secret; the current one keeps signing alongside it for `overlap`.

    Only one previous secret is kept: rotating again during an overlap retires the
    oldest secret at once.
    """
    endpoint = _require_endpoint(session, merchant, endpoint_id)
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise UserErrors(
            [
                UserError(
                    ("overlapHours",),
                    f"The overlap is between 0 and {MAX_OVERLAP // timedelta(hours=1)} hours.",
                    UserErrorCode.INVALID,
                )
            ]
        )
    endpoint.previous_secret = endpoint.secret if overlap > timedelta(0) else None
    endpoint.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    session.add(endpoint)
    return endpoint


def replay_message(
    session: Session, merchant: Merchant, message_id: str, now: datetime
) -> WebhookMessage:
    """Send a message again now, with a fresh retry schedule; earlier attempts stay logged."""
    message = session.exec(
        select(WebhookMessage).where(
            WebhookMessage.id == message_id, *_mine(WebhookMessage, merchant)
        )
    ).first()
    if message is None:
        raise _not_found(("id",), "webhook message")
    endpoint = session.get(WebhookEndpoint, message.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise UserErrors(
            [
                UserError(
                    ("id",),
                    "The message's endpoint is disabled or deleted; enable it first.",
                    UserErrorCode.WEBHOOK_ENDPOINT_DISABLED,
                )
            ]
        )
    message.status = WebhookMessageStatus.PENDING
    message.attempt_count = 0
    message.next_attempt_at = now
    message.delivered_at = None
    session.add(message)
    deliver_after_commit(session, [message.id])
    return message


def abandon_open_messages(session: Session, endpoint_id: str) -> None:
    """Give up on every message still waiting for this endpoint (replayable later)."""
    session.exec(
        update(WebhookMessage)
        .where(
            col(WebhookMessage.endpoint_id) == endpoint_id,
            col(WebhookMessage.status).in_(OPEN_STATUSES),
        )
        .values(status=WebhookMessageStatus.DEAD, next_attempt_at=None)
    )


def find_endpoint(session: Session, merchant: Merchant, endpoint_id: str) -> WebhookEndpoint | None:
    return session.exec(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id,
            *_mine(WebhookEndpoint, merchant),
            col(WebhookEndpoint.deleted_at).is_(None),
        )
    ).first()


def endpoints_page(
    session: Session, merchant: Merchant, after: str | None, size: int
) -> Sequence[WebhookEndpoint]:
    """Up to `size + 1` endpoints after the cursor id, oldest first (the extra one says more)."""
    statement = select(WebhookEndpoint).where(
        *_mine(WebhookEndpoint, merchant), col(WebhookEndpoint.deleted_at).is_(None)
    )
    if after is not None:
        statement = statement.where(WebhookEndpoint.id > after)
    return session.exec(statement.order_by(col(WebhookEndpoint.id)).limit(size + 1)).all()


def messages_page(
    session: Session,
    merchant: Merchant,
    endpoint_id: str | None,
    status: WebhookMessageStatus | None,
    before: str | None,
    size: int,
) -> Sequence[WebhookMessage]:
    """Up to `size + 1` messages, newest first, older than the cursor id."""
    statement = select(WebhookMessage).where(*_mine(WebhookMessage, merchant))
    if endpoint_id is not None:
        statement = statement.where(WebhookMessage.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookMessage.status == status)
    if before is not None:
        statement = statement.where(WebhookMessage.id < before)
    return session.exec(statement.order_by(col(WebhookMessage.id).desc()).limit(size + 1)).all()


def attempts_of(session: Session, merchant: Merchant, message_id: str) -> Sequence[WebhookAttempt]:
    return session.exec(
        select(WebhookAttempt)
        .where(*_mine(WebhookAttempt, merchant), WebhookAttempt.message_id == message_id)
        .order_by(col(WebhookAttempt.at), col(WebhookAttempt.id))
    ).all()


def _mine(
    model: type[WebhookEndpoint] | type[WebhookMessage] | type[WebhookAttempt], merchant: Merchant
) -> tuple[Any, ...]:
    """The conditions that keep a query to the merchant's rows of its own mode."""
    return (model.tenant_id == merchant.tenant_id, model.sandbox == merchant.sandbox)


def _require_endpoint(session: Session, merchant: Merchant, endpoint_id: str) -> WebhookEndpoint:
    endpoint = find_endpoint(session, merchant, endpoint_id)
    if endpoint is None:
        raise _not_found(("id",), "webhook endpoint")
    return endpoint


def _not_found(field: tuple[str, ...], what: str) -> UserErrors:
    return UserErrors([UserError(field, f"No {what} with this id.", UserErrorCode.NOT_FOUND)])


def _url_errors(url: str) -> list[UserError]:
    def invalid(message: str) -> list[UserError]:
        return [UserError(("url",), message, UserErrorCode.INVALID_URL)]

    url = url.strip()
    if not url:
        return [UserError(("url",), "A URL is required.", UserErrorCode.REQUIRED)]
    if len(url) > MAX_URL_LENGTH:
        return [
            UserError(("url",), f"At most {MAX_URL_LENGTH} characters.", UserErrorCode.TOO_LONG)
        ]
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # reading .port checks it
    except ValueError:
        return invalid("Not a valid URL.")
    if parts.scheme not in ("https", "http") or not host:
        return invalid("An absolute https:// URL is required.")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return invalid("https is required; plain http only for localhost and 127.0.0.1.")
    if parts.username is not None or parts.password is not None:
        return invalid("Credentials in the URL are not accepted; verify signatures instead.")
    if refusal := targets.literal_refusal(host):
        return invalid(f"Webhooks go to public addresses only: {refusal}")
    return []


def _event_type_errors(event_types: Sequence[str]) -> list[UserError]:
    if not event_types:
        return [
            UserError(
                ("eventTypes",), "Subscribe to at least one event type.", UserErrorCode.REQUIRED
            )
        ]
    return [
        UserError(
            ("eventTypes", str(index)),
            f"Unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}.",
            UserErrorCode.UNKNOWN_EVENT_TYPE,
        )
        for index, name in enumerate(event_types)
        if not is_known(name)
    ]


def _unique(event_types: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(event_types))


def failing_endpoints(session: Session, limit: int = 50) -> Sequence[WebhookEndpoint]:
    """Every merchant's endpoints that failed their last attempt or were disabled, the
    longest failing first (for operators: `lastmile status`)."""
    return session.exec(
        select(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.deleted_at).is_(None),
            (col(WebhookEndpoint.consecutive_failures) > 0)
            | col(WebhookEndpoint.enabled).is_(False),
        )
        .order_by(col(WebhookEndpoint.failing_since), col(WebhookEndpoint.id))
        .limit(limit)
    ).all()
