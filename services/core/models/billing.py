"""Metered usage, price plans and subscriptions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class UsageEvent(SQLModel, table=True):
    """Metered usage: append-only, idempotent by id (a repeat is a no-op)."""

    __tablename__ = "usage_event"
    __table_args__ = (Index("ix_usage_tenant_meter_at", "tenant_id", "meter", "at"),)

    id: str = Field(primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    meter: str
    quantity: Decimal = Field(sa_column=Column(Numeric(20, 6), nullable=False))
    at: datetime = Field(sa_type=UTCDateTime)
    key: str | None = None  # the distinct value for unique_count meters
    area_code: str | None = None
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PricePlan(SQLModel, table=True):
    __tablename__ = "price_plan"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_price_plan_version"),)

    id: str = Field(default_factory=lambda: new_id("pp"), primary_key=True)
    code: str
    version: int = 1
    currency: str
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Subscription(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("sub"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    plan_id: str = Field(foreign_key="price_plan.id")
    starts_on: date
