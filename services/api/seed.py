"""The demo world: one service area with a fleet, two merchants and an operator client.

Idempotent: running it again finds everything by its stable identifiers, creates
nothing twice, and rotates the API clients' secrets (secrets are only ever shown
when they are set).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from typing import Any

from sqlmodel import Session, select

from services.accounts import users
from services.accounts.roles import Role
from services.api.oauth.clients import (
    MERCHANT_SCOPES,
    OPERATOR_SCOPE,
    create_client,
    find_client,
    rotate_secret,
)
from services.billing.plans import DEFAULT_PLAN, store_plan, subscribe
from services.core import areas
from services.core.db import utcnow
from services.core.models import OAuthClient, ServiceArea, Shift, Subscription, Tenant, Vehicle
from services.core.opaque import new_secret
from services.core.settings import get_settings

DEMO_AREA: dict[str, Any] = {
    "code": "demo",
    "name": "Demo: Newark depot, serving Jersey City, Manhattan and Brooklyn",
    "timezone": "America/New_York",
    "currency": "USD",
    "depot_lat": 40.73,
    "depot_lng": -74.17,
    "south": 40.60,
    "west": -74.10,
    "north": 40.85,
    "east": -73.85,
    "day_start": time(8, 0),
    "day_end": time(21, 0),
    "average_speed_kmh": 24.0,
    "service_seconds": 180,
    # Same-day bookings are planned by the next wave of their day; the last wave of the
    # day also plans tomorrow.
    "wave_cutoffs": ["10:00", "14:00", "18:00"],
}
# Two shift patterns cover the 08:00-21:00 delivery day, each driver with a 30-minute
# break 4 to 5 hours in and at most 8.5 hours on the road. The fleet mixes large diesel
# vans (heavy and bulky loads, dearer per km and per day) with small e-vans (cheap to
# run, but full sooner, by volume before weight); several hundred parcels a day.
DEMO_SHIFTS = [(time(8, 0), time(17, 0)), (time(12, 0), time(21, 0))]
DEMO_WAGE_MINOR = 2_600
DEMO_MAX_ROUTE_MINUTES = 510


@dataclass(frozen=True)
class VanModel:
    name: str
    count: int  # per shift pattern
    capacity_grams: int
    capacity_volume_cm3: int
    capacity_parcels: int
    cost_per_km_minor: int
    fixed_cost_minor: int


DEMO_FLEET = [
    VanModel("Large van", 4, 1_200_000, 11_000_000, 180, 45, 6_000),
    VanModel("E-van", 8, 600_000, 4_500_000, 100, 12, 3_500),
]
DEMO_MERCHANTS = [("Acme Outfitters", "lm_demo_acme"), ("Bluebird Books", "lm_demo_bluebird")]
# Each demo merchant's owner signs in to the dashboard; the password is new on each run.
DEMO_OWNERS = {"lm_demo_acme": "owner@acme.example", "lm_demo_bluebird": "owner@bluebird.example"}
DEMO_OPERATOR_CLIENT_ID = "lm_demo_operator"


def seed_demo(session: Session, today: date, with_owners: bool = False) -> dict[str, Any]:
    """The demo world; `with_owners` also sets up each merchant's owner (the dashboard's
    sign-in), whose password is new on every run (`lastmile seed` does; tests that need
    no one to sign in skip the password hashing)."""
    area = _demo_area(session)
    plan = store_plan(session, DEFAULT_PLAN)
    merchants = []
    for name, client_id in DEMO_MERCHANTS:
        tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
        if tenant is None:
            tenant = Tenant(name=name)
            session.add(tenant)
            session.flush()
        if not session.exec(
            select(Subscription).where(Subscription.tenant_id == tenant.id)
        ).first():
            subscribe(session, tenant.id, plan, today.replace(day=1))
        client, secret = _client_with_fresh_secret(
            session, client_id, f"{name} integration", MERCHANT_SCOPES, tenant.id
        )
        test_client, test_secret = _client_with_fresh_secret(
            session, f"{client_id}_test", f"{name} sandbox", MERCHANT_SCOPES, tenant.id, True
        )
        merchants.append(
            {
                "tenant_id": tenant.id,
                "name": name,
                "client_id": client.client_id,
                "client_secret": secret,
                "sandbox_client_id": test_client.client_id,
                "sandbox_client_secret": test_secret,
            }
        )
        if with_owners:
            password = new_secret()[:20]
            owner = users.provision(
                session, tenant.id, DEMO_OWNERS[client_id], f"{name} owner", Role.OWNER,
                password, utcnow(),
            )  # fmt: skip
            merchants[-1].update(dashboard_email=owner.email, dashboard_password=password)
    operator, operator_secret = _client_with_fresh_secret(
        session, DEMO_OPERATOR_CLIENT_ID, "Demo operator", OPERATOR_SCOPE, None
    )
    return {
        "dashboard": f"{get_settings().issuer}/dashboard",
        "area": {
            "code": area.code,
            "timezone": area.timezone,
            "depot": {"lat": area.depot_lat, "lng": area.depot_lng},
            "bounds": {
                "south": area.south,
                "west": area.west,
                "north": area.north,
                "east": area.east,
            },
            "delivery_hours": {
                "start": area.day_start.strftime("%H:%M"),
                "end": area.day_end.strftime("%H:%M"),
            },
        },
        "merchants": merchants,
        "operator": {"client_id": operator.client_id, "client_secret": operator_secret},
    }


def _demo_area(session: Session) -> ServiceArea:
    area = areas.get_area(session, DEMO_AREA["code"])
    if area is not None:
        return area
    area = ServiceArea(**DEMO_AREA)
    session.add(area)
    session.flush()
    number = 0
    for starts, ends in DEMO_SHIFTS:
        for model in DEMO_FLEET:
            for _ in range(model.count):
                number += 1
                vehicle = Vehicle(
                    area_id=area.id,
                    name=f"{model.name} {number:02d}",
                    capacity_grams=model.capacity_grams,
                    capacity_volume_cm3=model.capacity_volume_cm3,
                    capacity_parcels=model.capacity_parcels,
                    cost_per_km_minor=model.cost_per_km_minor,
                    fixed_cost_minor=model.fixed_cost_minor,
                )
                session.add(vehicle)
                session.flush()
                shift = Shift(
                    area_id=area.id,
                    vehicle_id=vehicle.id,
                    starts_at=starts,
                    ends_at=ends,
                    hourly_wage_minor=DEMO_WAGE_MINOR,
                    max_route_minutes=DEMO_MAX_ROUTE_MINUTES,
                )
                shift.check(get_settings().minimum_hourly_wage_minor)
                session.add(shift)
    session.flush()
    return area


def _client_with_fresh_secret(
    session: Session,
    client_id: str,
    name: str,
    scope: str,
    tenant_id: str | None,
    sandbox: bool = False,
) -> tuple[OAuthClient, str]:
    client = find_client(session, client_id)
    if client is None:
        return create_client(
            session,
            name=name,
            scope=scope,
            tenant_id=tenant_id,
            client_id=client_id,
            sandbox=sandbox,
        )
    return client, rotate_secret(session, client)
