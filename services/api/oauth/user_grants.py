"""The grants through which people, not programs, give access: authorization code with
PKCE (RFC 6749 4.1, RFC 7636) and refresh tokens (RFC 6749 6).

- PKCE is required of every client, S256 only: `plain` would show the verifier to
  whoever sees the authorization request.
- Redirect URIs match a registered one exactly, and must be sent (no defaults).
- A code works once, for a minute; presenting it again revokes what it gave.
- A refresh token works once: each use returns a new one in the same family. Using a
  rotated one again means two parties hold the family (one of them stole it), so the
  whole family is revoked, access tokens included. Client credentials get none.
- The scope of a user's tokens is what the client asked for, within what the client
  holds and what the user's role allows (services.accounts.roles.scopes_for).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request, grants, scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlmodel import Session, col, select, update

from services.api.oauth import revocations
from services.api.oauth.tokens import issue_access_token
from services.core.db import utcnow
from services.core.models import AuthorizationCode, RefreshToken
from services.core.opaque import digest, new_secret

CODE_TTL = timedelta(seconds=60)
REFRESH_TOKEN_TTL = timedelta(days=30)
REFRESH_TOKEN_PREFIX = "lmr_"
PKCE_METHOD = "S256"


@dataclass(frozen=True)
class GrantedUser:
    """Who a code or refresh token acts for: a user at their merchant, within `allowed`
    scopes (their role's); `family` groups a refresh token with its rotations."""

    user_id: str
    tenant_id: str
    allowed: frozenset[str]
    sandbox: bool = False
    family: str | None = None

    def get_user_id(self) -> str:
        return self.user_id


class S256CodeChallenge(CodeChallenge):
    """PKCE required of every authorization request, and S256 its only method."""

    DEFAULT_CODE_CHALLENGE_METHOD = PKCE_METHOD
    SUPPORTED_CODE_CHALLENGE_METHOD = [PKCE_METHOD]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE (S256) is required.")
        if data.get("code_challenge_method") != PKCE_METHOD:
            raise InvalidRequestError("'code_challenge_method' must be S256 ('plain' is refused).")
        super().validate_code_challenge(grant, redirect_uri)


class _Code:
    """Authlib's view of a stored authorization code."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    @property
    def code_challenge(self) -> str:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.code_challenge_method


class _Refresh:
    """Authlib's view of a stored refresh token."""

    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def get_scope(self) -> str:
        return self.row.scope

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.row.client_id)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]

    @property
    def session(self) -> Session:
        return self.server.session  # type: ignore[no-any-return]

    def validate_authorization_redirect_uri(self, request: OAuth2Request, client: Any) -> str:
        """Exactly a registered URI, always sent (no default): RFC 9700's advice."""
        redirect_uri = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri'.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("'redirect_uri' is not registered for this client.")
        return str(redirect_uri)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        user: GrantedUser = request.user
        asked = scope_to_list(request.scope) or []
        now = utcnow()
        self.session.add(
            AuthorizationCode(
                code_hash=digest(code),
                client_id=request.client.get_client_id(),
                user_id=user.user_id,
                tenant_id=user.tenant_id,
                redirect_uri=request.payload.redirect_uri,
                scope=" ".join(s for s in asked if s in user.allowed),
                code_challenge=request.payload.data["code_challenge"],
                code_challenge_method=request.payload.data["code_challenge_method"],
                sandbox=user.sandbox,
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        row = self.session.exec(
            select(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == digest(code),
                AuthorizationCode.client_id == client.get_client_id(),
            )
            .with_for_update()
        ).first()
        if row is None:
            return None
        if row.used_at is not None:  # replayed: what it gave is revoked (RFC 6749 4.1.2)
            revoke_family(self.session, row.id, utcnow())
            return None
        if row.expires_at <= utcnow():
            return None
        return _Code(row)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        authorization_code.row.used_at = utcnow()
        self.session.add(authorization_code.row)

    def authenticate_user(self, authorization_code: _Code) -> GrantedUser:
        row = authorization_code.row
        # The code's id names the family its tokens belong to.
        return _granted(row.user_id, row.tenant_id, row.scope, row.sandbox, family=row.id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def session(self) -> Session:
        return self.server.session  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> _Refresh | None:
        row = self.session.exec(
            select(RefreshToken)
            .where(RefreshToken.token_hash == digest(refresh_token))
            .with_for_update()
        ).first()
        now = utcnow()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        if row.rotated_at is not None:  # reused: the family is compromised
            revoke_family(self.session, row.family_id, now)
            return None
        return _Refresh(row)

    def authenticate_user(self, refresh_token: _Refresh) -> GrantedUser:
        row = refresh_token.row
        return _granted(row.user_id, row.tenant_id, row.scope, row.sandbox, row.family_id)

    def revoke_old_credential(self, refresh_token: _Refresh) -> None:
        refresh_token.row.rotated_at = utcnow()
        self.session.add(refresh_token.row)


def _granted(user_id: str, tenant_id: str, scope: str, sandbox: bool, family: str) -> GrantedUser:
    """What a stored code or refresh token grants: no more than it was given."""
    return GrantedUser(user_id, tenant_id, frozenset(scope.split()), sandbox, family)


def generate_user_token(
    session: Session,
    client_id: str,
    user: GrantedUser,
    scope: str | None,
) -> dict[str, Any]:
    """An access token for the user through the client, and the next refresh token of
    the family; the refresh token is stored (hashed) in the caller's transaction."""
    granted = " ".join(s for s in (scope_to_list(scope) or []) if s in user.allowed)
    access_token, expires_in = issue_access_token(
        client_id=client_id,
        tenant_id=user.tenant_id,
        scope=granted,
        sandbox=user.sandbox,
        subject=user.user_id,
    )
    refresh = new_secret(REFRESH_TOKEN_PREFIX)
    now = utcnow()
    session.add(
        RefreshToken(
            token_hash=digest(refresh),
            family_id=user.family or new_secret(),
            client_id=client_id,
            user_id=user.user_id,
            tenant_id=user.tenant_id,
            scope=granted,
            sandbox=user.sandbox,
            access_jti=revocations.jti_of(access_token),
            access_expires_at=now + timedelta(seconds=expires_in),
            created_at=now,
            expires_at=now + REFRESH_TOKEN_TTL,
        )
    )
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": granted,
        "refresh_token": refresh,
    }


def revoke_family(session: Session, family_id: str, now: datetime) -> None:
    """Revoke every refresh token of a family and the access tokens issued with them."""
    rows = session.exec(select(RefreshToken).where(RefreshToken.family_id == family_id)).all()
    session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    for row in rows:
        if row.access_jti and row.access_expires_at and row.access_expires_at > now:
            revocations.revoke_access_token(session, row.access_jti, row.access_expires_at)


def revoke_user(session: Session, user_id: str, now: datetime) -> None:
    """Revoke every family of the user's tokens (signing out everywhere)."""
    families = session.exec(
        select(RefreshToken.family_id)
        .where(RefreshToken.user_id == user_id, col(RefreshToken.revoked_at).is_(None))
        .distinct()
    ).all()
    for family in families:
        revoke_family(session, family, now)
