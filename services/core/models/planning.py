"""Plan runs and the routes and stops they produce."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.ids import new_id


class PlanRunStatus(StrEnum):
    QUEUED = "QUEUED"
    SOLVING = "SOLVING"
    DONE = "DONE"
    FAILED = "FAILED"


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
    deliveries_planned: int = 0  # including those inserted into earlier routes
    # Late bookings put into routes an earlier wave of the same day had published.
    deliveries_inserted: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
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
