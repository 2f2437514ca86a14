"""Every query the planner runs, and the row locks it takes, in one place.

Reads for a plan run (open deliveries of an area's day, the fleet, the day's routes and
their stops), the locks its write transaction takes, the cost-basis revisions, the
deliveries a stand-alone re-plan prices and the plan runs the wave scheduler looks for.
The planner's rows carry no tenant filter here: a plan run works for the platform
across merchants, on the rows of one service area.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.core.models import (
    Delivery,
    DeliveryStatus,
    PlanRun,
    PlanRunStatus,
    Route,
    RouteCostBasis,
    ServiceArea,
    Shift,
    Stop,
    Vehicle,
)


def plan_run_with_area(session: Session, run_id: str) -> tuple[PlanRun, str] | None:
    found = session.exec(
        select(PlanRun, ServiceArea.code)
        .join(ServiceArea, col(ServiceArea.id) == col(PlanRun.area_id))
        .where(PlanRun.id == run_id)
    ).first()
    return (found[0], found[1]) if found else None


def recent_plan_runs(session: Session, area_id: str, limit: int) -> list[PlanRun]:
    return list(
        session.exec(
            select(PlanRun)
            .where(PlanRun.area_id == area_id)
            .order_by(col(PlanRun.id).desc())
            .limit(limit)
        ).all()
    )


def lock_plan_run(session: Session, run_id: str) -> PlanRun | None:
    return session.exec(select(PlanRun).where(PlanRun.id == run_id).with_for_update()).first()


def open_deliveries(session: Session, area_id: str, day: date) -> list[Delivery]:
    """The area's deliveries of the day still BOOKED (sandbox ones never), by id."""
    return list(
        session.exec(
            select(Delivery)
            .where(
                Delivery.area_id == area_id,
                Delivery.date == day,
                Delivery.status == DeliveryStatus.BOOKED,
                col(Delivery.sandbox).is_(False),
            )
            .order_by(col(Delivery.id))
        ).all()
    )


def has_open_deliveries(session: Session, area_id: str, day: date) -> bool:
    """Whether the area has a delivery of the day still BOOKED (sandbox ones never)."""
    found = session.exec(
        select(Delivery.id).where(
            Delivery.area_id == area_id,
            Delivery.date == day,
            Delivery.status == DeliveryStatus.BOOKED,
            col(Delivery.sandbox).is_(False),
        )
    ).first()
    return found is not None


def fleet(session: Session, area_id: str) -> list[tuple[Shift, Vehicle]]:
    """Every shift of the area on an active vehicle, by shift id."""
    return list(
        session.exec(
            select(Shift, Vehicle)
            .join(Vehicle, col(Vehicle.id) == col(Shift.vehicle_id))
            .where(Shift.area_id == area_id, col(Vehicle.active).is_(True))
            .order_by(col(Shift.id))
        ).all()
    )


def routes_of_day(session: Session, area_id: str, day: date) -> list[Route]:
    return list(
        session.exec(
            select(Route).where(Route.area_id == area_id, Route.date == day).order_by(col(Route.id))
        ).all()
    )


def route_deliveries(session: Session, route_id: str) -> list[Delivery]:
    """The route's deliveries in stop order."""
    return list(
        session.exec(
            select(Delivery)
            .join(Stop, col(Stop.delivery_id) == col(Delivery.id))
            .where(Stop.route_id == route_id)
            .order_by(col(Stop.sequence))
        ).all()
    )


def route_van(session: Session, route: Route) -> tuple[Shift, Vehicle]:
    """The shift and vehicle that drive the route."""
    shift = session.get(Shift, route.shift_id)
    vehicle = session.get(Vehicle, route.vehicle_id)
    assert shift is not None and vehicle is not None  # foreign keys
    return shift, vehicle


def planned_deliveries(session: Session, area_id: str, day: date) -> list[Delivery]:
    """The deliveries on the area's routes of the day, by id."""
    return list(
        session.exec(
            select(Delivery)
            .join(Route, col(Route.id) == col(Delivery.route_id))
            .where(Route.area_id == area_id, Route.date == day)
            .order_by(col(Delivery.id))
        ).all()
    )


def lock_area(session: Session, area_id: str) -> None:
    """Serialise the area's plan writers: lock its row for the rest of the transaction."""
    session.exec(select(ServiceArea).where(ServiceArea.id == area_id).with_for_update()).one()


def lock_deliveries(session: Session, ids: Collection[str]) -> dict[str, Delivery]:
    return {
        d.id: d
        for d in session.exec(
            select(Delivery).where(col(Delivery.id).in_(ids)).with_for_update()
        ).all()
    }


def lock_route(session: Session, route_id: str) -> Route:
    return session.exec(select(Route).where(Route.id == route_id).with_for_update()).one()


def route_stops(session: Session, route_id: str) -> list[Stop]:
    return list(
        session.exec(
            select(Stop).where(Stop.route_id == route_id).order_by(col(Stop.sequence))
        ).all()
    )


def route_stop_tenants(session: Session, route_id: str) -> list[tuple[str, str]]:
    """(tenant, delivery) of each of the route's stops, in stop order."""
    rows = session.exec(
        select(Stop.tenant_id, Stop.delivery_id)
        .where(Stop.route_id == route_id)
        .order_by(col(Stop.sequence))
    ).all()
    return [(tenant_id, delivery_id) for tenant_id, delivery_id in rows]


def last_cost_basis_revision(session: Session, route_id: str) -> int | None:
    return session.exec(
        select(func.max(RouteCostBasis.revision)).where(RouteCostBasis.route_id == route_id)
    ).one()


def service_areas(session: Session) -> list[ServiceArea]:
    return list(session.exec(select(ServiceArea)).all())


def stale_queued_runs(session: Session, requested_before: datetime) -> list[str]:
    """Ids of the plan runs still QUEUED that were requested before the given instant."""
    return list(
        session.exec(
            select(PlanRun.id).where(
                PlanRun.status == PlanRunStatus.QUEUED,
                col(PlanRun.requested_at) < requested_before,
            )
        ).all()
    )


def plan_run_exists(session: Session, area_id: str, day: date, trigger: str) -> bool:
    found = session.exec(
        select(PlanRun.id).where(
            PlanRun.area_id == area_id,
            PlanRun.date == day,
            PlanRun.trigger == trigger,
        )
    ).first()
    return found is not None


def last_waves(session: Session) -> list[tuple[str, PlanRun | None]]:
    """Each service area's code and its most recent wave's plan run (None: no wave yet)."""
    return [
        (
            area.code,
            session.exec(
                select(PlanRun)
                .where(PlanRun.area_id == area.id, col(PlanRun.trigger).startswith("wave"))
                .order_by(col(PlanRun.requested_at).desc(), col(PlanRun.id).desc())
                .limit(1)
            ).first(),
        )
        for area in session.exec(select(ServiceArea).order_by(col(ServiceArea.code))).all()
    ]
