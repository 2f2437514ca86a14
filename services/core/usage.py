"""Recording metered usage, in the same transaction as the action that causes it.

Usage events are append-only and idempotent by id: recording the same id twice is a
no-op, so a retried action never bills twice; a repeat whose content differs is not
stored and is reported back as a conflict. Every service that causes usage (booking
in the API, planned stops in the planner, billing's own jobs) records it through here.

Why a late event is never lost: every tenant has a billing-account row from its
creation (a trigger adds it). Recording holds the tenants' rows FOR SHARE from before
it reads `closed_through` until it commits; finalizing a period takes every row FOR
UPDATE before it aggregates, and numbers only the tenants it locked. So a batch either
commits before the close aggregates (and is on the invoice), or waits for the close to
commit and then reads the month as closed, billing the event to the first open month.
Both happen in the single INSERT statement, so recording adds no round trip.

Why there is no foreign key from usage_event to tenant: an event is only inserted
joined to its tenant's billing-account row, locked FOR SHARE by the same statement, and
that row references the tenant; an event whose tenant has no account is refused with
the batch. The per-row foreign-key check was the largest cost of bulk ingestion and
proved nothing that join does not. On PostgreSQL a trigger keeps an account with usage
from being deleted, so no event ever outlives its tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from services.core.db import driver_cursor, json_document, text_once_per_instant, utcnow
from services.core.meters import METERS, Usage
from services.core.models import BillingAccount, UsageEvent

QUANTITY_SCALE = 6  # decimal places the usage_event.quantity column keeps
_MAX_QUANTITY = Decimal(10) ** (20 - QUANTITY_SCALE)
_BATCH = 5000  # rows per INSERT statement (PostgreSQL allows 65535 parameters)


class UsageError(ValueError):
    """A usage event that cannot be recorded; the message names it. Nothing was written."""


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
    if type(quantity) is not Decimal:
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
    if not isinstance(event.at, datetime) or event.at.utcoffset() is None:
        raise UsageError(f"{where}: timestamp {event.at!r} has no time zone")
    if event.key == "":
        raise UsageError(f"{where}: key must be non-empty when given")
    if "\x00" in f"{event.id}{event.tenant_id}{event.key}{event.area_code}{event.service_level}":
        raise UsageError(f"{where}: text fields cannot hold a NUL character")


# Usage the session's transaction must record before it commits, held until then so it
# can ride along with the next recording instead of costing a statement of its own.
_DEFERRED = "usage.deferred"


def defer_usage(session: Session, events: Iterable[Usage]) -> None:
    """Record these events in this transaction, with the session's next record_usage
    or else with record_deferred_usage, which the deferring caller runs before commit."""
    session.info.setdefault(_DEFERRED, []).extend(events)


def record_deferred_usage(session: Session) -> None:
    record_usage(session, [])


@sa_event.listens_for(Session, "after_rollback")
def forget_deferred_usage(session: Session) -> None:
    session.info.pop(_DEFERRED, None)


def record_usage(session: Session, events: Iterable[Usage]) -> IngestReport:
    """Append usage events: new ids are stored, identical repeats ignored, conflicts reported.

    Events deferred on the session (defer_usage) are recorded with them.

    Everything is validated before anything is written, so bad input (including an
    unknown tenant) writes nothing. On PostgreSQL a batch smaller than `COPY_THRESHOLD`
    is one statement; a bigger one is copied into a temporary table first. Only a
    batch that repeats stored ids reads them back, to tell duplicates from conflicts.
    """
    batch = [*events, *session.info.pop(_DEFERRED, ())]
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
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_postgresql(session, list(unique.values()))
    else:
        inserted = _insert_sqlite(session, list(unique.values()))
    report.recorded = len(inserted)
    if report.recorded < len(unique):
        repeats = [event for event in unique.values() if event.id not in inserted]
        _check_repeats(session, repeats, report)
    return report


COPY_THRESHOLD = 1000
"""Batches this big travel by COPY: a booking's few events stay one round trip, while a
bulk import pays three more (create, fill and drop a staging table) to skip JSON."""
_NULL = "\\N"  # COPY's text format for null

_COLUMNS = ("id", "tenant_id", "meter", "quantity", "at", "key", "area_code", "service_level")

# The tenants' account rows are locked FOR SHARE (in tenant order, as closing locks them
# FOR UPDATE) before any event row is produced; a row updated by a concurrent close is
# re-read once that close commits, so `closed_through` is the committed value. This is
# also the tenant check: a tenant without an account row comes back flagged, and then
# nothing is inserted.
_INSERT = """
WITH account AS MATERIALIZED (
    SELECT tenant_id, closed_through FROM billing_account
    WHERE tenant_id = ANY(CAST(%(tenants)s AS text[]))
    ORDER BY tenant_id
    FOR SHARE
), missing AS MATERIALIZED (
    SELECT t.tenant_id FROM unnest(CAST(%(tenants)s AS text[])) AS t(tenant_id)
    WHERE NOT EXISTS (SELECT FROM account a WHERE a.tenant_id = t.tenant_id)
), event AS ({source}),
inserted AS (
    INSERT INTO usage_event (id, tenant_id, meter, quantity, at, key, area_code,
                             service_level, period, billed_period, recorded_at)
    SELECT e.id, e.tenant_id, e.meter, e.quantity, e.at, e.key, e.area_code, e.service_level,
           e.period,
           CASE WHEN e.period <= a.closed_through
                THEN to_char(to_date(a.closed_through, 'YYYY-MM') + interval '1 month',
                             'YYYY-MM')
                ELSE e.period END,
           %(now)s
    FROM event e JOIN account a ON a.tenant_id = e.tenant_id
    WHERE NOT EXISTS (SELECT FROM missing)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT id, NULL AS unknown_tenant FROM inserted
UNION ALL
SELECT NULL, tenant_id FROM missing
"""
_PERIOD = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') AS period"
_FROM_JSON = _INSERT.format(source=f"""
    SELECT e.*, {_PERIOD}
    FROM json_to_recordset(CAST(%(events)s AS json)) AS e(
        id text, tenant_id text, meter text, quantity numeric, at timestamptz, key text,
        area_code text, service_level text)
""")  # fmt: skip
_FROM_STAGING = _INSERT.format(source=f"SELECT s.*, {_PERIOD} FROM usage_staging s")
_CREATE_STAGING = """
CREATE TEMPORARY TABLE usage_staging (
    id text, tenant_id text, meter text, quantity numeric, at timestamptz, key text,
    area_code text, service_level text
) ON COMMIT DROP
"""


def _insert_postgresql(session: Session, events: list[Usage]) -> set[str]:
    """Insert the batch in one statement that also locks the accounts, checks the
    tenants and computes the billed month; return the ids it inserted.

    Small batches travel as one JSON document, so recording adds no round trip to the
    action that causes it; big ones by COPY in text format, several times cheaper to
    encode and parse than JSON.
    """
    parameters = {"tenants": sorted({e.tenant_id for e in events}), "now": utcnow()}
    at_text = text_once_per_instant()
    with driver_cursor(session) as cursor:
        if len(events) < COPY_THRESHOLD:
            parameters["events"] = json_document([
                {"id": e.id, "tenant_id": e.tenant_id, "meter": e.meter,
                 "quantity": str(e.quantity), "at": at_text(e.at), "key": e.key,
                 "area_code": e.area_code, "service_level": e.service_level}
                for e in events
            ])  # fmt: skip
            rows = cursor.execute(_FROM_JSON, parameters).fetchall()
        else:
            cursor.execute(_CREATE_STAGING)
            with cursor.copy(f"COPY usage_staging ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                copy.write(_copy_text(events, at_text))
            rows = cursor.execute(_FROM_STAGING, parameters).fetchall()
            cursor.execute("DROP TABLE usage_staging")
    unknown = {tenant for _, tenant in rows if tenant is not None}
    if unknown:
        first = next(e for e in events if e.tenant_id in unknown)
        raise UsageError(f"usage event {first.id!r}: unknown tenant {first.tenant_id!r}")
    return {usage_id for usage_id, _ in rows}


_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(events: list[Usage], at_text: Callable[[datetime], str | None]) -> str:
    r"""The batch in COPY's text format: tab-separated, one line per event, \N for null.

    Fields are joined unescaped first (ids and tenants almost never hold a tab, newline,
    carriage return or backslash); unless the tabs, newlines and backslashes count
    exactly what the format itself put there and no carriage return appears, the
    document is rebuilt escaping every field.
    """
    document = "".join([
        f"{e.id}\t{e.tenant_id}\t{e.meter}\t{e.quantity}\t{at_text(e.at)}\t"
        f"{_NULL if e.key is None else e.key}\t"
        f"{_NULL if e.area_code is None else e.area_code}\t"
        f"{_NULL if e.service_level is None else e.service_level}\n"
        for e in events
    ])  # fmt: skip
    nulls = sum((e.key is None) + (e.area_code is None) + (e.service_level is None)
                for e in events)  # fmt: skip
    if (
        document.count("\t") == (len(_COLUMNS) - 1) * len(events)
        and document.count("\n") == len(events)
        and document.count("\\") == nulls
        and "\r" not in document
    ):
        return document
    return "".join(
        "\t".join(
            _NULL if value is None else str(value).translate(_ESCAPE)
            for value in (e.id, e.tenant_id, e.meter, e.quantity, at_text(e.at), e.key,
                          e.area_code, e.service_level)
        ) + "\n"
        for e in events
    )  # fmt: skip


def _insert_sqlite(session: Session, events: list[Usage]) -> set[str]:
    """SQLite runs one writer at a time, so reading `closed_through` needs no lock."""
    accounts = BillingAccount.__table__  # type: ignore[attr-defined]
    closed = dict(
        session.execute(
            select(accounts.c.tenant_id, accounts.c.closed_through).where(
                accounts.c.tenant_id.in_({e.tenant_id for e in events})
            )
        ).all()
    )
    for event in events:
        if event.tenant_id not in closed:
            raise UsageError(f"usage event {event.id!r}: unknown tenant {event.tenant_id!r}")
    now = utcnow()
    rows = [_row(event, closed[event.tenant_id], now) for event in events]
    table = UsageEvent.__table__  # type: ignore[attr-defined]
    statement = (
        sqlite_insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    )
    return set(session.execute(statement, rows).scalars())


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
