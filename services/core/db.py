"""Database engine, sessions and the column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Table, event, insert
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from services.core.settings import get_settings


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)

    # Pinging on every checkout costs a round trip per request. Connections go stale
    # while idle (a database restart, a firewall's timeout), so only those are pinged;
    # a dead one is replaced before anyone uses it.
    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error
        if not alive:
            raise DisconnectionError("the database did not answer a ping")

    return engine


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().resolved_database_url())


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Requests, CLI commands and tasks own their transaction through this; services
    below never commit on their own.
    """
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# Row-level security (PostgreSQL): the tenant a merchant's transactions act for.
_TENANT = "lastmile.tenant_id"


def for_tenant(session: Session, tenant_id: str) -> Session:
    """Confine the session's transactions to one tenant's rows, below the application.

    The repository layer filters every query by tenant; on PostgreSQL each transaction
    of this session also sets `lastmile.tenant_id`, which the tables' row-level security
    policies enforce (migration d5b8e0f4a1c6): a query that forgot its filter reads
    nothing of other tenants and cannot write for them.
    """
    session.info[_TENANT] = tenant_id
    return session


@event.listens_for(Session, "after_begin")
def _set_tenant_of_transaction(session: Session, _transaction: Any, connection: Any) -> None:
    tenant_id = session.info.get(_TENANT)
    if tenant_id is not None and connection.dialect.name == "postgresql":
        _set_tenant(connection, tenant_id)


def _set_tenant(connection: Any, tenant_id: str) -> None:
    driver = connection.connection.driver_connection
    driver.execute("SELECT set_config(%s, %s, true)", (_TENANT, tenant_id))


@contextmanager
def across_tenants(session: Session) -> Iterator[None]:
    """Lift a tenant session's confinement for a read that must count every tenant's
    rows (an area's remaining capacity); nothing of theirs may reach the caller."""
    tenant_id = session.info.get(_TENANT)
    connection = session.connection()
    if tenant_id is None or connection.dialect.name != "postgresql":
        yield
        return
    _set_tenant(connection, "")
    try:
        yield
    finally:
        _set_tenant(connection, tenant_id)


@contextmanager
def driver_cursor(session: Session) -> Iterator[Any]:
    """A cursor of the driver (psycopg) on the session's connection, in its transaction.

    For the hot statements of PostgreSQL-only code: SQLAlchemy's execution of a
    statement costs about twice what the driver's does (measured: 200 against 80 µs for
    a one-row INSERT), and a booking runs several.
    """
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        yield cursor


BULK_MIN_ROWS = 50
"""From this many rows, `insert_rows` sends them as one JSON document (PostgreSQL only)."""


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) in the session's transaction.

    Every booking comes through here. On PostgreSQL the rows' values pass through each
    column type's own conversion, so they are stored exactly as SQLAlchemy would store
    them, and go to the driver: one INSERT per row, or for many rows one INSERT that
    reads them from a JSON document, several times cheaper for this process and for the
    database. (COPY would be cheaper still, but PostgreSQL refuses COPY FROM into tables
    under row-level security.) Other databases get a Core INSERT.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    names = tuple(rows[0])
    statements = _driver_statements(table, names, connection.dialect)
    with driver_cursor(session) as cursor:
        if len(rows) >= BULK_MIN_ROWS:
            cursor.execute(statements.insert_from_json, (_json_document(statements, rows),))
            return
        values = [
            [
                row[name] if convert is None else convert(row[name])
                for name, convert in statements.converters
            ]
            for row in rows
        ]
        if len(values) == 1:
            cursor.execute(statements.insert, values[0])
        else:
            cursor.executemany(statements.insert, values)


@dataclass(frozen=True)
class _DriverStatements:
    insert: str  # one row, %s placeholders
    insert_from_json: str  # many rows, from a JSON array of objects keyed by column
    converters: list[tuple[str, Any]]  # each column's bind conversion, or None
    # For a JSON document, the columns whose values need converting:
    # (name, whether it is a UTCDateTime, conversion).
    json_converters: list[tuple[str, bool, Any]]


def _json_document(statements: _DriverStatements, rows: list[dict[str, Any]]) -> str:
    """The rows as a JSON array of objects, each value as its column would store it."""
    plan = [
        (name, text_once_per_instant(convert) if instant else convert)
        for name, instant, convert in statements.json_converters
    ]
    if not plan:
        return json_document(rows)
    converted = []
    for row in rows:
        row = dict(row)  # the caller's rows stay as they are
        for name, convert in plan:
            row[name] = convert(row[name])
        converted.append(row)
    return json_document(converted)


def text_once_per_instant(
    convert: Callable[[datetime], datetime] | None = None,
) -> Callable[[datetime | None], str | None]:
    """For one batch: a timestamp as ISO text (after `convert`), made once per instant.

    A batch's rows share a few instants (its `now`, the day's delivery window), and
    `datetime.isoformat` was the costliest part of encoding a row. Only for timestamptz
    columns, where equal instants store the same whatever their offset.
    """
    texts: dict[datetime, str] = {}

    def text(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = texts.get(value)
        if found is None:
            found = texts[value] = (value if convert is None else convert(value)).isoformat()
        return found

    return text


def json_document(value: Any) -> str:
    """A value as JSON text for a statement to read (`json_populate_recordset`,
    `json_to_recordset`); dates as ISO text, decimals as their text.

    orjson, not the standard library: bulk bookings send a document per table, and
    the standard encoder was a tenth of their CPU (measured: 5.6 against 0.4 µs a
    delivery row). Only for documents the database reads; hashes of requests keep the
    standard library's exact text.
    """
    return orjson.dumps(value, default=str).decode()


@lru_cache(maxsize=64)
def _driver_statements(table: Table, names: tuple[str, ...], dialect: Dialect) -> _DriverStatements:
    """The statements for these columns and each column's value conversion."""
    quote = dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in names)
    target = quote.format_table(table)
    placeholders = ", ".join(["%s"] * len(names))
    converters: list[tuple[str, Any]] = []
    json_converters: list[tuple[str, bool, Any]] = []
    for name in names:
        column_type = table.c[name].type
        convert = column_type.dialect_impl(dialect).bind_processor(dialect)
        converters.append((name, convert))
        if isinstance(column_type, UTCDateTime):
            json_converters.append((name, True, convert))
        elif convert is not None and not isinstance(column_type, JSON):
            # (a JSON column's value goes into the document as it is)
            json_converters.append((name, False, convert))
    return _DriverStatements(
        insert=f"INSERT INTO {target} ({columns}) VALUES ({placeholders})",
        insert_from_json=f"INSERT INTO {target} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{target}, %s)",
        converters=converters,
        json_converters=json_converters,
    )


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed (never on rollback).

    For side effects outside the database, such as enqueuing a Celery task that reads
    what the transaction wrote (Polar's enqueue-after-commit).
    """
    session.info.setdefault("on_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    for callback in session.info.pop("on_commit", []):
        callback()


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop("on_commit", None)
