"""Tenants and the API clients that act for them."""

from __future__ import annotations

from datetime import datetime

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
