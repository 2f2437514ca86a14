"""Webhooks: merchants' endpoints, the messages owed to them, and every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class WebhookEndpoint(SQLModel, table=True):
    """A URL a merchant wants events POSTed to, with the secrets that sign them.

    The signing secret is kept as is because signing needs it (it is not a password).
    After a rotation the previous secret keeps signing too until it expires, so a
    receiver can switch secrets without a window where it rejects genuine deliveries.
    Deleted endpoints stay as rows (`deleted_at`) so their delivery log survives.
    """

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_tenant_id", "tenant_id", "id"),)

    id: str = Field(default_factory=lambda: new_id("whe"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    # Made with sandbox credentials: receives sandbox events, and only sandbox
    # credentials see or change it (live ones, the live endpoints).
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    url: str
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    secret: str
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Failed attempts since the last success, and when that streak began: the
    # endpoint is disabled once the streak is both long and old.
    consecutive_failures: int = 0
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookMessageStatus(StrEnum):
    PENDING = "PENDING"  # not attempted yet (or replayed)
    FAILED = "FAILED"  # the last attempt failed; retried at next_attempt_at
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"  # given up: retries exhausted, or the endpoint was disabled or deleted


class WebhookMessage(SQLModel, table=True):
    """One outbox event owed to one endpoint; its `id` is the `webhook-id` header."""

    __tablename__ = "webhook_message"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_message_event"),
        Index("ix_webhook_message_due", "status", "next_attempt_at"),
        Index("ix_webhook_message_tenant_endpoint", "tenant_id", "endpoint_id", "id"),
    )

    id: str = Field(default_factory=lambda: new_id("msg"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    endpoint_id: str = Field(foreign_key="webhook_endpoint.id")
    # The outbox event's id; no foreign key, so old outbox rows can be pruned.
    event_id: str
    event_type: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: WebhookMessageStatus = WebhookMessageStatus.PENDING
    # Attempts since the message was created or last replayed: the retry schedule's step.
    attempt_count: int = 0
    # When the next attempt is due; also a lease while an attempt is in flight.
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    request_id: str | None = None  # its event's (services.core.logs)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request made for a message, successful or not (the delivery log)."""

    __tablename__ = "webhook_attempt"

    id: str = Field(default_factory=lambda: new_id("wha"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    message_id: str = Field(foreign_key="webhook_message.id", index=True)
    endpoint_id: str = Field(foreign_key="webhook_endpoint.id")
    at: datetime = Field(sa_type=UTCDateTime)
    url: str
    status_code: int | None = None  # null when no response came back
    response_excerpt: str | None = None
    error: str | None = None
    duration_ms: int
