"""A small planning world for plan-run tests: an area, vans on shifts, deliveries."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from services.core.db import transaction
from services.core.models import (
    Delivery,
    OutboxEvent,
    PlanRun,
    Route,
    ServiceArea,
    Shift,
    Stop,
    Tenant,
    UsageEvent,
    Vehicle,
)
from services.planner import runs
from services.planner.cost_basis import CoalitionCosts, Pricer, Stops, VanRates, coalition_costs
from services.planner.mapping import points
from services.planner.matrix import matrix_for
from tests.factories import DEMO_ZONE, days_ahead

# A week ahead, so no route of it has left yet (routes that departed are never reopened).
ZONE = DEMO_ZONE
DAY = days_ahead(7, ZONE)
DEPOT = (40.73, -74.17)


def area(session, code: str = "t") -> ServiceArea:
    row = ServiceArea(
        code=code,
        name="Test area",
        timezone="America/New_York",
        depot_lat=DEPOT[0],
        depot_lng=DEPOT[1],
        south=40.5,
        west=-74.3,
        north=40.9,
        east=-73.8,
        day_start=time(8),
        day_end=time(21),
        average_speed_kmh=24.0,
        service_seconds=180,
    )
    session.add(row)
    session.flush()
    return row


def van(
    session,
    where: ServiceArea,
    name: str = "van",
    *,
    grams: int = 600_000,
    volume: int = 4_500_000,
    parcels: int = 100,
    per_km: int = 12,
    fixed: int = 3_500,
    shift: tuple[time, time] = (time(8), time(17)),
    **shift_fields: Any,
) -> Shift:
    vehicle = Vehicle(
        area_id=where.id,
        name=name,
        capacity_grams=grams,
        capacity_volume_cm3=volume,
        capacity_parcels=parcels,
        cost_per_km_minor=per_km,
        fixed_cost_minor=fixed,
    )
    session.add(vehicle)
    session.flush()
    row = Shift(
        area_id=where.id,
        vehicle_id=vehicle.id,
        starts_at=shift[0],
        ends_at=shift[1],
        hourly_wage_minor=shift_fields.pop("hourly_wage_minor", 2_600),
        **shift_fields,
    )
    session.add(row)
    session.flush()
    return row


def tenant(session, name: str = "Acme") -> Tenant:
    row = Tenant(name=name)
    session.add(row)
    session.flush()
    return row


def delivery(
    session,
    where: ServiceArea,
    owner: Tenant,
    *,
    at: tuple[float, float] = (40.72, -74.0),
    window: tuple[int, int] = (9, 17),
    grams: int = 2_000,
    sides: tuple[int, int, int] | None = None,
) -> Delivery:
    row = Delivery(
        tenant_id=owner.id,
        reference=f"ref-{at}",
        area_id=where.id,
        date=DAY,
        window_start=datetime.combine(DAY, time(window[0]), ZONE),
        window_end=datetime.combine(DAY, time(window[1]), ZONE),
        dropoff_lat=at[0],
        dropoff_lng=at[1],
        recipient_name="Ada",
        weight_grams=grams,
        length_cm=sides[0] if sides else None,
        width_cm=sides[1] if sides else None,
        height_cm=sides[2] if sides else None,
    )
    session.add(row)
    session.flush()
    return row


def plan(code: str = "t", time_limit: float = 1.0) -> PlanRun:
    with transaction() as session:
        run = runs.request_plan(session, code, DAY, "test", time_limit)
    return runs.execute(run.id)


def counts() -> dict[str, int]:
    with transaction() as session:
        return {
            table.__name__: session.exec(select(func.count()).select_from(table)).one()
            for table in (Route, Stop, OutboxEvent, UsageEvent)
        }


def fetch(delivery_id: str) -> Delivery:
    with transaction() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def priced_afresh(session, route: Route) -> Pricer:
    """Coalition costs of a route's stops from a fresh matrix over the depot and just
    those stops, as if no plan run had carried its matrices: for routes laid by hand,
    and to check what a plan run prices against."""
    area = session.get_one(ServiceArea, route.area_id)
    rates = VanRates.of(
        area, session.get_one(Shift, route.shift_id), session.get_one(Vehicle, route.vehicle_id)
    )

    def price(stops: Stops) -> CoalitionCosts:
        deliveries = [session.get_one(Delivery, delivery) for _, delivery in stops]
        distance, duration = matrix_for(area, points(area, deliveries))
        tenants = [tenant for tenant, _ in stops]
        return coalition_costs(tenants, range(1, len(stops) + 1), distance, duration, rates)

    return price
