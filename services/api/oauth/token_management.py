"""Revocation (RFC 7009) and introspection (RFC 7662) of access and refresh tokens.

A client revokes only tokens issued to it; a public app identifies itself by its
client_id, as at the token endpoint. Introspection answers confidential clients only
(authenticated with HTTP Basic), about tokens issued to them, or to any client for the
operator: an unknown, expired or revoked token is just `{"active": false}`.
Revoking a refresh token revokes its whole family and the access tokens issued with
it; revoking an access token refuses it from then on (`revocations`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from joserfc import jwt
from sqlmodel import Session, select

from services.api.oauth import revocations
from services.api.oauth.keys import SIGNING_ALGORITHM, get_public_key_set
from services.api.oauth.tokens import InvalidTokenError, verify_access_token
from services.api.oauth.user_grants import REFRESH_TOKEN_PREFIX, revoke_family
from services.core.db import utcnow
from services.core.models import RefreshToken
from services.core.opaque import digest

OPERATOR_SCOPE = "operator"


class _Token:
    """A token as the endpoints see it, whichever kind it is."""

    kind: str
    client_id: str

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def is_expired(self) -> bool:
        return False  # expired tokens are never found

    def is_revoked(self) -> bool:
        return False  # neither are revoked ones


class _Access(_Token):
    kind = "access_token"

    def __init__(self, token: str) -> None:
        self.access = verify_access_token(token)
        self.client_id = self.access.client_id
        self.claims = jwt.decode(token, get_public_key_set(), algorithms=[SIGNING_ALGORITHM]).claims


class _Refresh(_Token):
    kind = "refresh_token"

    def __init__(self, row: RefreshToken) -> None:
        self.row = row
        self.client_id = row.client_id


def _find(session: Session, token: str, hint: str | None) -> _Token | None:
    """The live token a string names: refresh tokens carry their prefix."""
    if token.startswith(REFRESH_TOKEN_PREFIX):
        row = session.exec(
            select(RefreshToken).where(RefreshToken.token_hash == digest(token))
        ).first()
        if row is None or row.revoked_at is not None or row.rotated_at is not None:
            return None
        return _Refresh(row) if row.expires_at > utcnow() else None
    try:
        found = _Access(token)
    except InvalidTokenError:
        return None
    return None if revocations.is_revoked(found.access.jti) else found


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _find(self.server.session, token_string, token_type_hint)

    def revoke_token(self, token: _Token, request: Any) -> None:
        session: Session = self.server.session
        if isinstance(token, _Refresh):
            revoke_family(session, token.row.family_id, utcnow())
        elif isinstance(token, _Access):
            revocations.revoke_access_token(session, token.access.jti, token.access.expires_at)


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _find(self.server.session, token_string, token_type_hint)

    def check_permission(self, token: _Token, client: Any, request: Any) -> bool:
        return token.check_client(client) or OPERATOR_SCOPE in client.scopes

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        if isinstance(token, _Refresh):
            row = token.row
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": row.client_id,
                "sub": row.user_id,
                "scope": row.scope,
                "tenant_id": row.tenant_id,
                "iat": _seconds(row.created_at),
                "exp": _seconds(row.expires_at),
            }
        assert isinstance(token, _Access)
        claims = token.claims
        payload: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            **{
                name: claims[name]
                for name in ("client_id", "sub", "scope", "iss", "aud", "iat", "exp", "jti")
                if name in claims
            },
        }
        if token.access.tenant_id is not None:
            payload["tenant_id"] = token.access.tenant_id
        if token.access.sandbox:
            payload["sandbox"] = True
        return payload


def _seconds(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())
