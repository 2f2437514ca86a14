"""Plan runs, the routes and stops they produce, and the facts billing splits costs by."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint, text
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


class RouteCostBasis(SQLModel, table=True):
    """What billing needs to split one revision of a route's cost, written by the planner
    in the transaction that writes or grows the route.

    Planner and billing never import each other: the planner prices coalitions (it owns
    the cost model), billing turns these facts into shares (`RouteAllocation` rows of
    the same route and revision) in a later transaction and stamps `allocated_at`.
    - revision 1 covers the whole route when planned: `costs` maps each coalition of its
      merchants (tenant ids sorted, joined by ",") to what the van would cost serving
      only their stops, for every coalition when at most 8 merchants ride it (Shapley),
      else each merchant alone (stand-alone weights);
    - revision n >= 2 covers the stops a late insertion added; billing splits what the
      route grew by among their merchants by stop count, so `costs` is empty.
    Costs are minor units as exact decimal strings. Rows never change but for
    `allocated_at`.
    """

    __tablename__ = "route_cost_basis"
    __table_args__ = (
        # The allocation sweep's queue: small, whatever the history.
        Index(
            "ix_route_cost_basis_pending",
            "route_id",
            "revision",
            postgresql_where=text("allocated_at IS NULL"),
            sqlite_where=text("allocated_at IS NULL"),
        ),
    )

    route_id: str = Field(foreign_key="route.id", primary_key=True)
    revision: int = Field(primary_key=True)
    route_cost_minor: int = Field(sa_type=BigInteger)  # the route's cost at this revision
    departure_at: datetime = Field(sa_type=UTCDateTime)  # when its route_cost usage happens
    # tenant id -> the deliveries (stops) this revision covers, in stop order
    deliveries: dict[str, list[str]] = Field(sa_column=Column(JSON, nullable=False))
    costs: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    allocated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @staticmethod
    def coalition_key(tenants: Iterable[str]) -> str:
        """How `costs` names a coalition: its tenant ids, sorted, joined by ","."""
        return ",".join(sorted(tenants))
