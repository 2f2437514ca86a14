"""Access tokens refused before they expire (RFC 7009 revocation, a compromised refresh
token family, signing out everywhere).

Access tokens are self-contained JWTs, so a revocation is a `jti` on a list until the
token would have expired anyway. Every bearer check consults the list: a process keeps
it in memory and reloads it at most every RELOAD_SECONDS (one small query, never one
per request); a revocation made by this process is seen at once, one made by another
within that time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from joserfc import jwt
from sqlmodel import Session, col, delete, select

from services.api.oauth.keys import SIGNING_ALGORITHM, get_public_key_set
from services.core.db import on_commit, transaction, utcnow
from services.core.models import RevokedAccessToken

RELOAD_SECONDS = 2.0

_lock = threading.Lock()
_revoked: frozenset[str] = frozenset()
_loaded_at = float("-inf")


def jti_of(access_token: str) -> str:
    """The id of a token this server signed."""
    claims = jwt.decode(access_token, get_public_key_set(), algorithms=[SIGNING_ALGORITHM]).claims
    return str(claims["jti"])


def revoke_access_token(session: Session, jti: str, expires_at: datetime) -> None:
    if session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))
        session.flush()
    on_commit(session, forget)


def is_revoked(jti: str) -> bool:
    global _revoked, _loaded_at
    if time.monotonic() - _loaded_at > RELOAD_SECONDS:
        with _lock:
            if time.monotonic() - _loaded_at > RELOAD_SECONDS:
                with transaction() as session:
                    _revoked = frozenset(
                        session.exec(
                            select(RevokedAccessToken.jti).where(
                                col(RevokedAccessToken.expires_at) > utcnow()
                            )
                        ).all()
                    )
                _loaded_at = time.monotonic()
    return jti in _revoked


def forget() -> None:
    """Reload the list at the next check (after this process revoked a token)."""
    global _loaded_at
    _loaded_at = float("-inf")


def prune(session: Session, now: datetime) -> None:
    session.exec(delete(RevokedAccessToken).where(col(RevokedAccessToken.expires_at) <= now))
