"""A planned day without the solver: deliveries booked through the delivery domain, then
laid on routes by hand, so billing tests control exactly who rides which van."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlmodel import Session, select

from services.api.seed import seed_demo
from services.core.models import (
    Delivery,
    PlanRun,
    Route,
    ServiceArea,
    Shift,
    Vehicle,
)
from services.deliveries import booking, lifecycle, validation
from services.planner.cost_basis import record_cost_basis
from tests.planner.world import priced_afresh


def book(session: Session, tenant_id: str, count: int, now, offset: float = 0.0) -> list[Delivery]:
    """Deliveries booked through the delivery domain, as rows of this session."""
    booked = [
        booking.book(
            session,
            tenant_id,
            booking.BookingRequest(
                reference=f"{tenant_id}-{i}",
                service_area="demo",
                dropoff=validation.Dropoff(lat=40.70 + offset + i * 0.004, lng=-74.0 + i * 0.003),
                recipient=validation.Recipient(name=f"Person {i}"),
                parcel=validation.Parcel(weight_grams=2000),
            ),
            now,
        )
        for i in range(count)
    ]
    return [session.get_one(Delivery, delivery.id) for delivery in booked]


def plan_by_hand(session: Session, routes: list[list[Delivery]], cost_minor: int) -> list[Route]:
    """Put each list of deliveries on its own route of the demo fleet, in list order,
    writing what a plan run writes (the deliveries' BOOKED to PLANNED, each 3 km of the
    route, and the route's cost basis)."""
    area = session.exec(select(ServiceArea).where(ServiceArea.code == "demo")).one()
    day = routes[0][0].date
    run = PlanRun(area_id=area.id, date=day, trigger="test", time_limit_seconds=1)
    session.add(run)
    session.flush()
    shifts = session.exec(select(Shift, Vehicle).join(Vehicle).order_by(Shift.id)).all()
    written = []
    for (shift, vehicle), deliveries in zip(shifts, routes, strict=False):
        departure = deliveries[0].window_start
        route = Route(plan_run_id=run.id, area_id=area.id, date=day, vehicle_id=vehicle.id,
                      shift_id=shift.id, departure_at=departure,
                      return_at=departure + timedelta(hours=4), distance_m=30_000,
                      cost_minor=cost_minor, stop_count=len(deliveries))  # fmt: skip
        session.add(route)
        session.flush()
        for number, delivery in enumerate(deliveries, start=1):
            eta = departure + timedelta(minutes=10 * number)
            lifecycle.plan(session, delivery, route, number, eta, Decimal(3), "demo", departure)
        record_cost_basis(session, route, priced_afresh(session, route))
        written.append(route)
    session.flush()
    return written


def demo(session: Session, now) -> tuple[str, str]:
    merchants = seed_demo(session, now.date())["merchants"]
    return merchants[0]["tenant_id"], merchants[1]["tenant_id"]
