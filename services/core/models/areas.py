"""Service areas and their fleet: vans and the daily shifts that drive them.

Capacities are three dimensions the planner checks together: weight, volume and
parcel count (a small e-van fills up by volume long before it is heavy).
"""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.core.ids import new_id


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
    # Cargo space; the server default lets rows written before the column existed load.
    capacity_volume_cm3: int = Field(
        default=10_000_000, sa_column_kwargs={"server_default": "10000000"}
    )
    capacity_parcels: int
    cost_per_km_minor: int  # running cost per km, minor units
    fixed_cost_minor: int  # cost of taking the van out for a day
    active: bool = True


class ShiftError(ValueError):
    """A shift breaks a labour rule or cannot hold its own break; the message names it."""


class Shift(SQLModel, table=True):
    """A recurring daily shift of a driver with a van (local times of the area).

    The driver's break must start between `break_earliest_minutes` and
    `break_latest_minutes` after the shift starts. The defaults (30 minutes, starting
    4 to 5 hours in) satisfy the common US state and EU rule of a 30-minute break
    within the first six hours. `max_route_minutes` caps a route from departure to
    return (None: only the shift's end bounds it).
    """

    id: str = Field(default_factory=lambda: new_id("shf"), primary_key=True)
    area_id: str = Field(foreign_key="service_area.id", index=True)
    vehicle_id: str = Field(foreign_key="vehicle.id", index=True)
    starts_at: time
    ends_at: time
    hourly_wage_minor: int
    break_minutes: int = Field(default=30, sa_column_kwargs={"server_default": "30"})
    break_earliest_minutes: int = Field(default=240, sa_column_kwargs={"server_default": "240"})
    break_latest_minutes: int = Field(default=300, sa_column_kwargs={"server_default": "300"})
    max_route_minutes: int | None = None

    @property
    def length_minutes(self) -> int:
        day = datetime.min.date()
        span = datetime.combine(day, self.ends_at) - datetime.combine(day, self.starts_at)
        return int(span.total_seconds() // 60)

    def check(self, minimum_hourly_wage_minor: int) -> None:
        """Raise `ShiftError` unless the shift pays at least the minimum wage and its
        break and route limit fit inside it."""
        problems = []
        if self.hourly_wage_minor < minimum_hourly_wage_minor:
            problems.append(
                f"pays {self.hourly_wage_minor} per hour, below the minimum wage "
                f"{minimum_hourly_wage_minor}"
            )
        if self.length_minutes <= 0:
            problems.append("ends before it starts")
        if self.break_minutes < 0:
            problems.append("has a negative break")
        if not 0 <= self.break_earliest_minutes <= self.break_latest_minutes:
            problems.append("has a break window that ends before it starts")
        elif self.break_minutes and self.break_latest_minutes + self.break_minutes > (
            self.length_minutes
        ):
            problems.append("has a break window that does not fit in the shift")
        if self.max_route_minutes is not None and self.max_route_minutes <= 0:
            problems.append("has a non-positive max_route_minutes")
        if problems:
            raise ShiftError(f"shift {self.id}: " + "; ".join(problems))
