"""Service areas and their fleet: vans and the daily shifts that drive them."""

from __future__ import annotations

from datetime import time

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
