"""Quotes: a price and the open time windows for a drop-off, held for a short while."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class Quote(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("quo"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    # Asked for with sandbox credentials: only a sandbox booking may use it.
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    area_id: str = Field(foreign_key="service_area.id")
    date: date
    dropoff_lat: float
    dropoff_lng: float
    weight_grams: int
    price_minor: int  # what a booking made with this quote is billed
    currency: str
    # The windows offered, [[start, end], ...] as ISO instants in UTC.
    windows: list[list[str]] = Field(sa_column=Column(JSON, nullable=False))
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The delivery booked with it; a quote is used once.
    delivery_id: str | None = Field(default=None, foreign_key="delivery.id", unique=True)

    def offered_windows(self) -> list[tuple[datetime, datetime]]:
        """The windows offered, as instants."""
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in self.windows]
