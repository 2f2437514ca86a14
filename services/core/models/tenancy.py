"""Tenants and the API clients that act for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class Tenant(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("ten"), primary_key=True)
    name: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OAuthClient(SQLModel, table=True):
    """An API client. Merchant clients belong to a tenant; the operator client to none."""

    __tablename__ = "oauth_client"

    id: str = Field(default_factory=lambda: new_id("cli"), primary_key=True)
    client_id: str = Field(unique=True, index=True)
    secret_hash: str
    tenant_id: str | None = Field(default=None, foreign_key="tenant.id", index=True)
    name: str
    scope: str
    # Test-mode credentials: their deliveries are simulated, never routed or billed.
    sandbox: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    secret_rotated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # After a rotation the previous secret keeps working until it expires (an overlap).
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # User-facing apps (authorization code + PKCE): where codes may be sent (exact
    # match), whether the app holds no secret (a browser or native app), and whether
    # it is the platform's own (no consent screen).
    grant_types: list[str] = Field(
        default_factory=lambda: ["client_credentials"], sa_column=Column(JSON, nullable=False)
    )
    redirect_uris: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    public: bool = False
    first_party: bool = False
