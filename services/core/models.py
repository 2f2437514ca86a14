"""Every table of Lastmile, in one shared kernel.

The planner and billing must never import each other, yet both read deliveries and
routes, so the data model lives here and the services own the rules around it.
Tenant-owned rows carry `tenant_id`; repositories filter on it for every query.
Money is integer minor units of the area's or plan's currency; quantities are Decimal.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class DeliveryStatus(StrEnum):
    BOOKED = "BOOKED"
    PLANNED = "PLANNED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    RETURNED = "RETURNED"
    CANCELLED = "CANCELLED"


class PlanRunStatus(StrEnum):
    QUEUED = "QUEUED"
    SOLVING = "SOLVING"
    DONE = "DONE"
    FAILED = "FAILED"


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
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    secret_rotated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ServiceArea(SQLModel, table=True):
    __tablename__ = "service_area"

    id: str = Field(default_factory=lambda: new_id("area"), primary_key=True)
    code: str = Field(unique=True, index=True)
    name: str
    timezone: str
    currency: str = "USD"
    depot_lat: float
    depot_lng: float
    south: float
    west: float
    north: float
    east: float
    day_start: time
    day_end: time
    average_speed_kmh: float
    service_seconds: int = 180
    # Local times at which a wave plans the next day, e.g. ["18:00"].
    wave_cutoffs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Vehicle(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("veh"), primary_key=True)
    area_id: str = Field(foreign_key="service_area.id", index=True)
    name: str
    capacity_grams: int
    capacity_parcels: int
    cost_per_km_minor: int  # running cost per km, minor units
    fixed_cost_minor: int  # cost of taking the van out for a day
    active: bool = True


class Shift(SQLModel, table=True):
    """A recurring daily shift of a driver with a van (local times of the area)."""

    id: str = Field(default_factory=lambda: new_id("shf"), primary_key=True)
    area_id: str = Field(foreign_key="service_area.id", index=True)
    vehicle_id: str = Field(foreign_key="vehicle.id", index=True)
    starts_at: time
    ends_at: time
    hourly_wage_minor: int


class Delivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_delivery_idempotency"),
        Index("ix_delivery_area_day_status", "area_id", "date", "status"),
        Index("ix_delivery_tenant_id", "tenant_id", "id"),
    )

    id: str = Field(default_factory=lambda: new_id("dlv"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id")
    reference: str
    idempotency_key: str | None = None
    request_hash: str  # fingerprint of the booking input, for idempotent replays
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
    route_id: str | None = Field(default=None, foreign_key="route.id", index=True)
    stop_number: int | None = None
    # Why the last plan run could not fit it (a stable code); cleared once planned.
    unplanned_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryEvent(SQLModel, table=True):
    """The status history of a delivery, one row per change (tracking events)."""

    __tablename__ = "delivery_event"

    id: str = Field(default_factory=lambda: new_id("dev"), primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    delivery_id: str = Field(foreign_key="delivery.id", index=True)
    status: DeliveryStatus
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    detail: str | None = None


class PlanRun(SQLModel, table=True):
    __tablename__ = "plan_run"

    id: str = Field(default_factory=lambda: new_id("plan"), primary_key=True)
    area_id: str = Field(foreign_key="service_area.id", index=True)
    date: date
    status: PlanRunStatus = PlanRunStatus.QUEUED
    trigger: str  # "cli", "wave", "api"
    time_limit_seconds: float
    requested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deliveries_considered: int = 0
    deliveries_planned: int = 0
    deliveries_unplanned: int = 0
    routes: int = 0
    distance_m: int = 0
    cost_minor: int = 0
    best_cost_minor: int | None = None  # best cost found so far while solving
    error: str | None = None


class Route(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("rte"), primary_key=True)
    plan_run_id: str = Field(foreign_key="plan_run.id", index=True)
    area_id: str = Field(foreign_key="service_area.id")
    date: date
    vehicle_id: str = Field(foreign_key="vehicle.id")
    shift_id: str = Field(foreign_key="shift.id")
    departure_at: datetime = Field(sa_type=UTCDateTime)
    return_at: datetime = Field(sa_type=UTCDateTime)
    distance_m: int
    cost_minor: int  # fixed + distance + driver time, what billing shares out
    stop_count: int


class Stop(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("route_id", "sequence", name="uq_stop_sequence"),)

    id: str = Field(default_factory=lambda: new_id("stp"), primary_key=True)
    route_id: str = Field(foreign_key="route.id", index=True)
    delivery_id: str = Field(foreign_key="delivery.id", index=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True)
    sequence: int  # 1-based position on the route
    eta: datetime = Field(sa_type=UTCDateTime)


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


class OutboxEvent(SQLModel, table=True):
    """Facts to publish (webhooks, downstream jobs), written with the change itself."""

    __tablename__ = "outbox_event"

    id: str = Field(default_factory=lambda: new_id("obx"), primary_key=True)
    tenant_id: str | None = Field(default=None, foreign_key="tenant.id", index=True)
    topic: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
