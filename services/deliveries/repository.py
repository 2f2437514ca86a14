"""Every query about deliveries and their tracking events, with the tenant filter in one place.

A merchant's query starts from `owned`: another tenant's delivery, or one of the other
mode (live or sandbox), is then exactly as absent as one that does not exist. A
`merchant` of None is the platform (the operator's drivers and depots, the planner),
which acts on every tenant's deliveries.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from services.core.db import across_tenants
from services.core.models import Delivery, DeliveryEvent, DeliveryStatus
from services.core.principal import Merchant


def owned(merchant: Merchant | None) -> SelectOfScalar[Delivery]:
    """The deliveries a caller may see: the merchant's of its mode, or every one for the
    platform."""
    statement = select(Delivery)
    if merchant is None:
        return statement
    return statement.where(
        Delivery.tenant_id == merchant.tenant_id, Delivery.sandbox == merchant.sandbox
    )


def get(session: Session, merchant: Merchant | None, delivery_id: str) -> Delivery | None:
    return session.exec(owned(merchant).where(Delivery.id == delivery_id)).first()


def lock(session: Session, merchant: Merchant | None, delivery_id: str) -> Delivery | None:
    """The delivery, locked for a change (FOR UPDATE)."""
    statement = owned(merchant).where(Delivery.id == delivery_id).with_for_update()
    return session.exec(statement).first()


def by_ids(session: Session, ids: Collection[str]) -> dict[str, Delivery]:
    """Deliveries by id (deliveries are never deleted)."""
    if not ids:
        return {}
    rows = session.exec(select(Delivery).where(col(Delivery.id).in_(ids))).all()
    return {row.id: row for row in rows}


def by_tracking_token(session: Session, token: str) -> Delivery | None:
    """The delivery a recipient's tracking link names, whoever's it is."""
    return session.exec(select(Delivery).where(Delivery.tracking_token == token)).first()


def events_of(session: Session, tenant_id: str | None, delivery_id: str) -> list[DeliveryEvent]:
    """A delivery's tracking events, oldest first."""
    statement = select(DeliveryEvent).where(DeliveryEvent.delivery_id == delivery_id)
    if tenant_id is not None:
        statement = statement.where(DeliveryEvent.tenant_id == tenant_id)
    return list(
        session.exec(statement.order_by(col(DeliveryEvent.at), col(DeliveryEvent.id))).all()
    )


def events_after(
    session: Session, merchant: Merchant, last_id: str, delivery_id: str | None, limit: int
) -> list[tuple[DeliveryEvent, Delivery]]:
    """The merchant's tracking events (of its mode) after event `last_id`, in id order,
    with their delivery."""
    statement = (
        select(DeliveryEvent, Delivery)
        .join(Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id))
        .where(
            DeliveryEvent.tenant_id == merchant.tenant_id,
            Delivery.sandbox == merchant.sandbox,
            col(DeliveryEvent.id) > last_id,
        )
        .order_by(col(DeliveryEvent.id))
        .limit(limit)
    )
    if delivery_id is not None:
        statement = statement.where(DeliveryEvent.delivery_id == delivery_id)
    return [(event, delivery) for event, delivery in session.exec(statement).all()]


def newest_event_id(session: Session, tenant_id: str) -> str | None:
    return session.exec(
        select(DeliveryEvent.id)
        .where(DeliveryEvent.tenant_id == tenant_id)
        .order_by(col(DeliveryEvent.id).desc())
        .limit(1)
    ).first()


def open_windows_of_day(
    session: Session, area_id: str, day: date
) -> list[tuple[datetime, datetime]]:
    """The windows of every merchant's live deliveries still to plan or on a route that
    day: all of them fill the same vans."""
    with across_tenants(session) as everyone:
        rows = everyone.exec(
            select(Delivery.window_start, Delivery.window_end).where(
                Delivery.area_id == area_id,
                Delivery.date == day,
                col(Delivery.status).in_([DeliveryStatus.BOOKED, DeliveryStatus.PLANNED]),
                col(Delivery.sandbox).is_(False),
            )
        ).all()
    return [(start, end) for start, end in rows]


def own_stops_on_route(session: Session, merchant: Merchant, route_id: str) -> list[Delivery]:
    """The merchant's deliveries on a route, in stop order: never another merchant's stops."""
    return list(
        session.exec(
            owned(merchant).where(Delivery.route_id == route_id).order_by(col(Delivery.stop_number))
        ).all()
    )
