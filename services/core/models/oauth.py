"""What the authorization server remembers for user-facing grants: authorization codes,
refresh tokens (rotated, in families) and revoked access tokens.

Codes and refresh tokens are stored as SHA-256 hashes of long random values.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class AuthorizationCode(SQLModel, table=True):
    """An authorization code (RFC 6749 4.1), bound to its client, redirect URI, user and
    PKCE challenge; used once, within a minute."""

    __tablename__ = "oauth_authorization_code"

    id: str = Field(default_factory=lambda: new_id("acd"), primary_key=True)
    code_hash: str = Field(unique=True)
    client_id: str
    user_id: str = Field(foreign_key="user_account.id")
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    sandbox: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RefreshToken(SQLModel, table=True):
    """A refresh token. Each use rotates it: the next one joins its `family`; presenting
    a rotated one again revokes the whole family (it was stolen, or the client is broken)."""

    __tablename__ = "oauth_refresh_token"

    id: str = Field(default_factory=lambda: new_id("rft"), primary_key=True)
    token_hash: str = Field(unique=True)
    family_id: str = Field(index=True)
    client_id: str
    user_id: str = Field(foreign_key="user_account.id", index=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    scope: str
    sandbox: bool = False
    # The access token issued with it: revoking the family refuses that one too.
    access_jti: str | None = None
    access_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RevokedAccessToken(SQLModel, table=True):
    """An access token (by `jti`) refused before it expires; forgotten after."""

    __tablename__ = "oauth_revoked_access_token"

    jti: str = Field(primary_key=True)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
