"""Recording metered usage, in the same transaction as the action that causes it.

Usage events are append-only and idempotent by id: recording the same id twice is a
no-op, so a retried action never bills twice. Every service that causes usage (booking
in the API, planned stops in the planner, billing's own jobs) records it through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from services.core.db import utcnow
from services.core.models import UsageEvent

# The meters Lastmile emits; price plans charge on these names.
METERS = frozenset(
    {
        "deliveries",  # one per booking
        "parcel_kg",  # weight booked
        "active_recipients",  # distinct recipients (unique_count on key)
        "failed_attempts",
        "cancellations",  # cancelled once planned
        "api_requests",
        "route_km",  # the merchant's share of planned route distance
    }
)


@dataclass(frozen=True)
class Usage:
    id: str
    tenant_id: str
    meter: str
    quantity: Decimal
    at: datetime
    key: str | None = None
    area_code: str | None = None


def record_usage(session: Session, events: list[Usage]) -> None:
    """Append usage events, ignoring ids that are already recorded."""
    if not events:
        return
    for event in events:
        if event.meter not in METERS:
            raise ValueError(f"unknown meter {event.meter!r} for usage event {event.id!r}")
        if event.quantity < 0:
            raise ValueError(f"usage event {event.id!r} has a negative quantity")
    now = utcnow()
    rows = [
        {
            "id": e.id,
            "tenant_id": e.tenant_id,
            "meter": e.meter,
            "quantity": e.quantity,
            "at": e.at,
            "key": e.key,
            "area_code": e.area_code,
            "recorded_at": now,
        }
        for e in events
    ]
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = UsageEvent.__table__  # type: ignore[attr-defined]
    session.execute(
        dialect_insert(table).values(rows).on_conflict_do_nothing(index_elements=["id"])
    )
