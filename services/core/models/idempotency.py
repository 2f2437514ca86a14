"""Idempotency keys: a retried mutation replays its first result instead of acting again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow


class IdempotencyRecord(SQLModel, table=True):
    """The first request made with a key, and what it produced (kept at least 24 hours)."""

    __tablename__ = "idempotency_record"

    # Whose key space: a merchant tenant's id, or "client:<client_id>" for the operator;
    # and in which mode (a merchant's sandbox credentials have keys of their own).
    principal: str = Field(primary_key=True)
    sandbox: bool = Field(default=False, primary_key=True)
    key: str = Field(primary_key=True)
    operation: str  # the mutation's name: a key is never shared between operations
    fingerprint: str  # hash of the input, to tell a replay from a conflict
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
