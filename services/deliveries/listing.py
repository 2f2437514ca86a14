"""Listing a merchant's deliveries: filters, sort orders and keyset pagination.

Pages are cut by position, not offset: the cursor holds the sort value and id of the
last row shown, so a page never repeats or skips rows when deliveries are added
while a client pages through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import Session, col

from services.core.models import Delivery, DeliveryStatus
from services.core.principal import Merchant
from services.deliveries.repository import owned


class SortKey(StrEnum):
    CREATED_AT = "CREATED_AT"
    DATE = "DATE"
    REFERENCE = "REFERENCE"


# Ids are time-ordered, so creation order is id order; every order ends on the id.
_COLUMNS: dict[SortKey, tuple[Any, ...]] = {
    SortKey.CREATED_AT: (col(Delivery.id),),
    SortKey.DATE: (col(Delivery.date), col(Delivery.id)),
    SortKey.REFERENCE: (col(Delivery.reference), col(Delivery.id)),
}


@dataclass(frozen=True)
class Filters:
    statuses: tuple[DeliveryStatus, ...] = ()
    day: date | None = None
    reference: str | None = None


def position(delivery: Delivery, sort: SortKey) -> list[str]:
    """Where a row stands in an order, as the strings a cursor carries."""
    if sort is SortKey.DATE:
        return [delivery.date.isoformat(), delivery.id]
    if sort is SortKey.REFERENCE:
        return [delivery.reference, delivery.id]
    return [delivery.id]


def page(
    session: Session,
    merchant: Merchant,
    filters: Filters,
    sort: SortKey,
    reverse: bool,
    size: int,
    after: list[str] | None,
) -> tuple[list[Delivery], bool]:
    """One page of the merchant's deliveries after `after`, and whether more follow."""
    columns = _COLUMNS[sort]
    statement = owned(merchant)
    if filters.statuses:
        statement = statement.where(col(Delivery.status).in_(filters.statuses))
    if filters.day is not None:
        statement = statement.where(Delivery.date == filters.day)
    if filters.reference is not None:
        statement = statement.where(Delivery.reference == filters.reference)
    if after is not None:
        if len(after) != len(columns):
            raise ValueError("This cursor belongs to another sort order.")
        values: list[Any] = list(after)
        if sort is SortKey.DATE:
            values[0] = date.fromisoformat(values[0])
        key, bound = tuple_(*columns), tuple_(*values)
        statement = statement.where(key < bound if reverse else key > bound)
    ordering = [c.desc() if reverse else c.asc() for c in columns]
    rows = list(session.exec(statement.order_by(*ordering).limit(size + 1)).all())
    return rows[:size], len(rows) > size
