"""Deliveries and their status history."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, ForeignKeyConstraint, Index, text
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id, unguessable_id


class DeliveryStatus(StrEnum):
    BOOKED = "BOOKED"
    PLANNED = "PLANNED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    RETURNED = "RETURNED"
    CANCELLED = "CANCELLED"


_PLANNED = text("route_id IS NOT NULL")


class Delivery(SQLModel, table=True):
    __table_args__ = (
        Index("ix_delivery_area_day_status", "area_id", "date", "status"),
        # A tenant's deliveries in order (listings), and what its events reference.
        Index("ix_delivery_tenant_id", "tenant_id", "id", unique=True),
        # Only planned deliveries: a booking (route_id null) adds nothing to it.
        Index("ix_delivery_route_id", "route_id", postgresql_where=_PLANNED, sqlite_where=_PLANNED),
    )

    id: str = Field(default_factory=lambda: new_id("dlv"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    reference: str
    # Sandbox deliveries (test-mode credentials) never reach real routes or invoices.
    sandbox: bool = False
    # The recipient's read-only handle for public tracking; reveals no merchant data.
    tracking_token: str = Field(
        default_factory=lambda: unguessable_id("trk"), unique=True, index=True
    )
    attempt: int = 1  # which delivery attempt the current status belongs to
    status: DeliveryStatus = DeliveryStatus.BOOKED
    area_id: str = Field(foreign_key="service_area.id")
    date: date
    window_start: datetime = Field(sa_type=UTCDateTime)
    window_end: datetime = Field(sa_type=UTCDateTime)
    dropoff_lat: float
    dropoff_lng: float
    dropoff_line1: str | None = None
    dropoff_city: str | None = None
    dropoff_postal_code: str | None = None
    dropoff_country: str | None = None
    recipient_name: str
    recipient_phone: str | None = None
    recipient_email: str | None = None
    weight_grams: int
    length_cm: int | None = None
    width_cm: int | None = None
    height_cm: int | None = None
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime)
    route_id: str | None = Field(default=None, foreign_key="route.id")
    stop_number: int | None = None
    # Why the last plan run could not fit it (a stable code); cleared once planned.
    unplanned_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The request that booked it (services.core.logs): later log lines about it name it.
    request_id: str | None = None


class DeliveryEvent(SQLModel, table=True):
    """The status history of a delivery, one row per change (tracking events)."""

    __tablename__ = "delivery_event"
    __table_args__ = (
        # A tenant's events in order: the subscription feed reads them by (tenant, id > last).
        Index("ix_delivery_event_tenant_id_id", "tenant_id", "id"),
        # An event belongs to a delivery of its own tenant: one key checks both.
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["delivery.tenant_id", "delivery.id"],
            name="delivery_event_delivery_fkey",
        ),
    )

    id: str = Field(default_factory=lambda: new_id("dev"), primary_key=True)
    tenant_id: str
    sandbox: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    delivery_id: str = Field(index=True)
    status: DeliveryStatus
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    detail: str | None = None
    lat: float | None = None  # where it happened, when a driver reports it
    lng: float | None = None
    reason: str | None = None  # normalised failure or cancellation reason
    proof: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
