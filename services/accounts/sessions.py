"""Browser sessions: a random secret in an HttpOnly cookie, its hash in `web_session`.

Whatever a session must keep secret server-side (the dashboard's OAuth tokens) is
sealed with AES-GCM under a key derived from the cookie's secret: the database alone
cannot open it, and a session ended anywhere is ended everywhere at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session, col, delete, select

from services.core.models import WebSession
from services.core.opaque import digest, new_secret

LIFETIME = timedelta(hours=12)
_SEAL_CONTEXT = b"lastmile web session seal v1"


def start(
    session: Session, user_id: str, now: datetime, user_agent: str | None = None
) -> tuple[WebSession, str]:
    """A new session for the user, and the secret its cookie carries."""
    secret = new_secret()
    row = WebSession(
        token_hash=digest(secret),
        user_id=user_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + LIFETIME,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    return row, secret


def find(session: Session, secret: str, now: datetime) -> WebSession | None:
    """The live session a cookie's secret opens, or None."""
    row = session.exec(select(WebSession).where(WebSession.token_hash == digest(secret))).first()
    if row is None or row.expires_at <= now:
        return None
    return row


def end(session: Session, row: WebSession) -> None:
    session.delete(row)


def end_all(session: Session, user_id: str) -> int:
    """Sign the user out everywhere: every one of their sessions ends."""
    result = session.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def seal(row: WebSession, secret: str, data: dict[str, Any]) -> None:
    nonce = os.urandom(12)
    box = AESGCM(_key(secret)).encrypt(nonce, json.dumps(data).encode(), row.id.encode())
    row.sealed_tokens = base64.urlsafe_b64encode(nonce + box).decode()


def unseal(row: WebSession, secret: str) -> dict[str, Any] | None:
    if not row.sealed_tokens:
        return None
    raw = base64.urlsafe_b64decode(row.sealed_tokens.encode())
    try:
        plain = AESGCM(_key(secret)).decrypt(raw[:12], raw[12:], row.id.encode())
    except InvalidTag:
        return None
    data: dict[str, Any] = json.loads(plain)
    return data


def csrf_token(secret: str) -> str:
    """The token every form of this session carries: bound to the session, unguessable
    without its cookie, and the same for its whole life."""
    return hashlib.sha256(b"csrf:" + secret.encode()).hexdigest()


def prune(session: Session, now: datetime) -> None:
    session.exec(delete(WebSession).where(col(WebSession.expires_at) <= now))


def _key(secret: str) -> bytes:
    return hashlib.sha256(_SEAL_CONTEXT + secret.encode()).digest()
