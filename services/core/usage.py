"""Recording metered usage, in the same transaction as the action that causes it.

Usage events are append-only and idempotent by id: recording the same id twice is a
no-op, so a retried action never bills twice; a repeat whose content differs is not
stored and is reported back as a conflict. Every service that causes usage (booking
in the API, planned stops in the planner, billing's own jobs) records it through here.

Each batch takes the tenants' billing-account rows FOR SHARE: closing a period takes
them FOR UPDATE, so an event either commits before its month is finalized (and is on
that invoice) or sees the month closed and is billed by the first open month.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from services.core.db import utcnow
from services.core.models import BillingAccount, UsageEvent

# The meters Lastmile emits; price plans charge on these names.
METERS = frozenset(
    {
        "deliveries",  # one per booking
        "parcel_kg",  # weight booked
        "active_recipients",  # distinct recipients (unique_count on key)
        "delivered",  # one per delivery completed
        "failed_attempts",  # one per failed delivery attempt
        "cancellations",  # one per delivery cancelled
        "late_cancellations",  # one per delivery cancelled once planned
        "quoted_amount",  # a booking made on a quote: its quoted price, in currency units
        "api_requests",
        "route_km",  # the merchant's share of planned route distance
        "route_cost",  # the merchant's allocated share of route cost, in currency units
    }
)

QUANTITY_SCALE = 6  # decimal places the usage_event.quantity column keeps
_MAX_QUANTITY = Decimal(10) ** (20 - QUANTITY_SCALE)
_BATCH = 5000  # rows per INSERT statement (PostgreSQL allows 65535 parameters)


class UsageError(ValueError):
    """A usage event that cannot be recorded; the message names it. Nothing was written."""


@dataclass(frozen=True)
class Usage:
    id: str
    tenant_id: str
    meter: str
    quantity: Decimal
    at: datetime
    key: str | None = None
    area_code: str | None = None
    service_level: str | None = None


@dataclass(frozen=True)
class Conflict:
    """A repeated id whose content differs from the stored (or first) event."""

    id: str
    differences: tuple[str, ...]

    def __str__(self) -> str:
        different = ", ".join(self.differences)
        return f"usage event {self.id!r} repeats a recorded id with different {different}"


@dataclass
class IngestReport:
    recorded: int = 0
    duplicates: int = 0
    conflicts: list[Conflict] = field(default_factory=list)


def period_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def validate(event: Usage) -> None:
    """Raise UsageError naming the event if it cannot be stored exactly as given."""
    where = f"usage event {event.id!r}"
    if not event.id or not event.tenant_id:
        raise UsageError(f"{where}: id and tenant must be non-empty")
    if event.meter not in METERS:
        raise UsageError(f"{where}: unknown meter {event.meter!r}")
    quantity = event.quantity
    if isinstance(quantity, bool) or not isinstance(quantity, Decimal | int):
        raise UsageError(f"{where}: quantity {quantity!r} is not a decimal number")
    quantity = Decimal(quantity)
    if not quantity.is_finite():
        raise UsageError(f"{where}: quantity {quantity} is not a number")
    if quantity < 0:
        raise UsageError(f"{where}: quantity {quantity} is negative")
    if quantity >= _MAX_QUANTITY:
        raise UsageError(f"{where}: quantity {quantity} is too large")
    if quantity != round(quantity, QUANTITY_SCALE):
        raise UsageError(f"{where}: quantity {quantity} has more than {QUANTITY_SCALE} decimals")
    if not isinstance(event.at, datetime) or event.at.tzinfo is None:
        raise UsageError(f"{where}: timestamp {event.at!r} has no time zone")
    if event.key == "":
        raise UsageError(f"{where}: key must be non-empty when given")


def record_usage(session: Session, events: Iterable[Usage]) -> IngestReport:
    """Append usage events: new ids are stored, identical repeats ignored, conflicts reported.

    Everything is validated before anything is written, so bad input writes nothing.
    """
    batch = list(events)
    for event in batch:
        validate(event)
    report = IngestReport()
    unique: dict[str, Usage] = {}
    for event in batch:
        first = unique.setdefault(event.id, event)
        if first is not event:
            _compare(first, event, report)
    if not unique:
        return report
    closed = _lock_accounts(session, sorted({e.tenant_id for e in unique.values()}))
    now = utcnow()
    rows = [_row(event, closed.get(event.tenant_id), now) for event in unique.values()]
    table = UsageEvent.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_postgresql(session, rows)
    else:
        statement = (
            sqlite_insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        )
        inserted = set(session.execute(statement, rows).scalars())
    report.recorded = len(inserted)
    repeats = [event for event in unique.values() if event.id not in inserted]
    if repeats:
        _check_repeats(session, repeats, report)
    return report


_COLUMNS = {
    "id": "text", "tenant_id": "text", "meter": "text", "quantity": "numeric",
    "at": "timestamptz", "key": "text", "area_code": "text", "service_level": "text",
    "period": "text", "billed_period": "text", "recorded_at": "timestamptz",
}  # fmt: skip
_UNNEST_INSERT = text(
    f"INSERT INTO usage_event ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _COLUMNS.items())}) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


def _insert_postgresql(session: Session, rows: list[dict[str, object]]) -> set[str]:
    """One statement per batch whatever its size: each column travels as one array."""
    columns = {name: [row[name] for row in rows] for name in _COLUMNS}
    columns["at"] = [at.astimezone(UTC) for at in columns["at"]]  # type: ignore[attr-defined]
    return set(session.execute(_UNNEST_INSERT, columns).scalars())


def _lock_accounts(session: Session, tenant_ids: Sequence[str]) -> dict[str, str | None]:
    """Each tenant's last finalized period, holding its account row FOR SHARE."""
    table = BillingAccount.__table__  # type: ignore[attr-defined]
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        dialect_insert(table)
        .values([{"tenant_id": t, "last_invoice_number": 0, "last_credit_note_number": 0}
                 for t in tenant_ids])
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )  # fmt: skip
    rows = session.execute(
        select(table.c.tenant_id, table.c.closed_through)
        .where(table.c.tenant_id.in_(tenant_ids))
        .order_by(table.c.tenant_id)
        .with_for_update(read=True)
    ).all()
    return {tenant_id: closed for tenant_id, closed in rows}


def _row(event: Usage, closed_through: str | None, now: datetime) -> dict[str, object]:
    period = period_of(event.at.astimezone(UTC))
    billed = period
    if closed_through is not None and period <= closed_through:
        billed = next_period(closed_through)
    return {
        "id": event.id,
        "tenant_id": event.tenant_id,
        "meter": event.meter,
        "quantity": Decimal(event.quantity),
        "at": event.at,
        "key": event.key,
        "area_code": event.area_code,
        "service_level": event.service_level,
        "period": period,
        "billed_period": billed,
        "recorded_at": now,
    }


_COMPARED = ("tenant_id", "meter", "quantity", "at", "key", "area_code", "service_level")


def _compare(stored: Usage, repeat: Usage, report: IngestReport) -> None:
    differences = tuple(
        name for name in _COMPARED if getattr(stored, name) != getattr(repeat, name)
    )
    if differences:
        report.conflicts.append(Conflict(repeat.id, differences))
    else:
        report.duplicates += 1


def _check_repeats(session: Session, repeats: list[Usage], report: IngestReport) -> None:
    table = UsageEvent.__table__  # type: ignore[attr-defined]
    columns = [table.c.id, *(table.c[name] for name in _COMPARED)]
    stored = {}
    ids = [event.id for event in repeats]
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        for row in session.execute(select(*columns).where(table.c.id.in_(chunk))).all():
            stored[row.id] = Usage(id=row.id, **{name: getattr(row, name) for name in _COMPARED})
    for event in repeats:
        _compare(stored[event.id], event, report)
