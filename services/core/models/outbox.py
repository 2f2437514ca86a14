"""The transactional outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class OutboxEvent(SQLModel, table=True):
    """Facts to publish (webhooks, downstream jobs), written with the change itself."""

    __tablename__ = "outbox_event"

    id: str = Field(default_factory=lambda: new_id("obx"), primary_key=True)
    tenant_id: str | None = Field(default=None, foreign_key="tenant.id", index=True)
    topic: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
