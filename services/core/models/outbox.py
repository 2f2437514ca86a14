"""The transactional outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class OutboxEvent(SQLModel, table=True):
    """Facts to publish (webhooks, downstream jobs), written with the change itself.

    `tenant_id` (null for platform events) says whose webhook endpoints receive it. It
    has no foreign key nor index: each event is written in the transaction of the
    change it announces, whose own rows reference the tenant, and nothing looks events
    up by tenant; the checks cost every booking a key lookup and an index entry.
    """

    __tablename__ = "outbox_event"

    id: str = Field(default_factory=lambda: new_id("obx"), primary_key=True)
    tenant_id: str | None = None
    # A sandbox booking's events go to the tenant's sandbox endpoints only.
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    topic: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # The request that caused it (services.core.logs), for the logs of whoever handles it.
    request_id: str | None = None
