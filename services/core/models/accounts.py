"""People who use the dashboard: users, their membership of a merchant, invitations,
e-mail verification, sign-in attempts and browser sessions; and each merchant's settings.

Secrets a person is sent or holds (verification links, invitations, session cookies)
are stored only as SHA-256 hashes: they are long random values, so a leaked table is
useless. Passwords, which people choose, are argon2 hashes (services.accounts.passwords).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class UserAccount(SQLModel, table=True):
    """A person who signs in to the dashboard; belongs to one merchant (`Membership`)."""

    __tablename__ = "user_account"

    id: str = Field(default_factory=lambda: new_id("usr"), primary_key=True)
    email: str = Field(unique=True, index=True)  # lower-cased
    name: str
    password_hash: str
    email_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    """A user's role at a merchant: owner, admin, developer or viewer."""

    __table_args__ = (UniqueConstraint("tenant_id", "user_id", name="uq_membership_user"),)

    id: str = Field(default_factory=lambda: new_id("mbr"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    user_id: str = Field(foreign_key="user_account.id", index=True)
    role: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Invitation(SQLModel, table=True):
    """An invitation to join a merchant with a role, sent by e-mail; accepted once."""

    id: str = Field(default_factory=lambda: new_id("inv"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    email: str
    role: str
    token_hash: str = Field(unique=True)
    invited_by: str = Field(foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EmailVerification(SQLModel, table=True):
    """A link that proves a user reads the mailbox they signed up with."""

    __tablename__ = "email_verification"

    id: str = Field(default_factory=lambda: new_id("evf"), primary_key=True)
    user_id: str = Field(foreign_key="user_account.id", index=True)
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginAttempt(SQLModel, table=True):
    """One sign-in attempt: throttling counts recent failures per account and per address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_address_at", "address", "at"),
    )

    id: str = Field(default_factory=lambda: new_id("lga"), primary_key=True)
    email: str
    address: str
    at: datetime = Field(sa_type=UTCDateTime)
    succeeded: bool


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random secret; the row its hash, and the
    dashboard's OAuth tokens sealed with a key derived from that secret, so the row
    alone opens nothing."""

    __tablename__ = "web_session"

    id: str = Field(default_factory=lambda: new_id("wss"), primary_key=True)
    token_hash: str = Field(unique=True)
    user_id: str = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    sealed_tokens: str | None = None
    user_agent: str | None = None


class MerchantSettings(SQLModel, table=True):
    """A merchant's company profile, defaults and which recipient notifications go out."""

    __tablename__ = "merchant_settings"

    tenant_id: str = Field(foreign_key="tenant.id", primary_key=True)
    legal_name: str | None = None
    address: str | None = None
    support_email: str | None = None
    support_phone: str | None = None
    default_service_area: str | None = None
    # Notification kinds (services.notifications) mapped to whether they are sent.
    notifications: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
