"""Every query about deliveries and their tracking events, with the tenant filter in one place.

A merchant's query starts from `owned`: another tenant's delivery, or one of the other
mode (live or sandbox), is then exactly as absent as one that does not exist. A
`merchant` of None is the platform (the operator's drivers and depots, the planner),
which acts on every tenant's deliveries.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from services.core.db import across_tenants
from services.core.models import Delivery, DeliveryEvent, DeliveryStatus, Stop
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


def own_stop_number(session: Session, delivery: Delivery) -> int | None:
    """The delivery's place among its own merchant's stops on its route (1 = the first
    of theirs), None off a route: a route is shared, and a merchant learns nothing of the
    stops of others (not how many come before, nor between)."""
    if delivery.route_id is None or delivery.stop_number is None:
        return None
    return session.exec(
        select(func.count())
        .select_from(Stop)
        .where(
            Stop.route_id == delivery.route_id,
            Stop.tenant_id == delivery.tenant_id,
            col(Stop.sequence) <= delivery.stop_number,
        )
    ).one()


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


def events_since(
    session: Session, merchant: Merchant, since: str | None, delivery_id: str | None
) -> tuple[str, list[tuple[DeliveryEvent, Delivery]]]:
    """The merchant's tracking events (of its mode) that became visible after position
    `since` (None: now), with their delivery, and the position to ask from next.

    A feed that followed event ids would skip an event whose transaction made its id
    before another's and committed after it. On PostgreSQL a position is a snapshot
    (`pg_current_snapshot()`) and each event carries the id of the transaction that
    wrote it (`delivery_event.txid`, migration e5a7c9b1d3f2): what became visible since
    a snapshot is exactly what that snapshot saw as not yet committed, whatever the
    order of the commits. SQLite, one writer at a time, follows event ids. Call it in a
    transaction of its own.
    """
    if session.get_bind().dialect.name != "postgresql":
        return _events_after_id(session, merchant, since, delivery_id)
    connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    now = str(connection.execute(text("SELECT pg_current_snapshot()::text")).scalar_one())
    if since is None:
        return now, []
    _xmin, xmax, in_progress = since.split(":")
    statement = _mine(merchant, delivery_id).where(
        text("(delivery_event.txid >= :xmax OR delivery_event.txid = ANY(:in_progress))")
    )
    params = {"xmax": int(xmax), "in_progress": [int(x) for x in in_progress.split(",") if x]}
    rows = session.exec(
        statement.order_by(text("delivery_event.txid"), col(DeliveryEvent.id)).params(**params)
    ).all()
    return now, [(event, delivery) for event, delivery in rows]


def _events_after_id(
    session: Session, merchant: Merchant, last_id: str | None, delivery_id: str | None
) -> tuple[str, list[tuple[DeliveryEvent, Delivery]]]:
    if last_id is None:
        newest = session.exec(
            select(DeliveryEvent.id)
            .where(DeliveryEvent.tenant_id == merchant.tenant_id)
            .order_by(col(DeliveryEvent.id).desc())
            .limit(1)
        ).first()
        return newest or "", []
    statement = _mine(merchant, delivery_id).where(col(DeliveryEvent.id) > last_id)
    rows = session.exec(statement.order_by(col(DeliveryEvent.id))).all()
    return (rows[-1][0].id if rows else last_id), [(event, delivery) for event, delivery in rows]


def _mine(merchant: Merchant, delivery_id: str | None) -> Any:
    """The merchant's tracking events of its mode (or of one delivery), with their delivery."""
    statement = (
        select(DeliveryEvent, Delivery)
        .join(Delivery, col(Delivery.id) == col(DeliveryEvent.delivery_id))
        .where(
            DeliveryEvent.tenant_id == merchant.tenant_id,
            DeliveryEvent.sandbox == merchant.sandbox,
        )
    )
    if delivery_id is not None:
        statement = statement.where(DeliveryEvent.delivery_id == delivery_id)
    return statement


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
