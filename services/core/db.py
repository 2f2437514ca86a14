"""Database engine, sessions and the column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Table, event, insert
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


COPY_MIN_ROWS = 50
"""From this many rows, `insert_rows` copies instead of inserting (PostgreSQL only)."""


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) in the session's transaction.

    Every booking comes through here. On PostgreSQL the rows' values pass through each
    column type's own conversion, so they are stored exactly as SQLAlchemy would store
    them, and go to the driver: one INSERT per row, or COPY for many rows, several times
    cheaper for this process and for the database. Other databases get a Core INSERT.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    names = tuple(rows[0])
    insert_sql, copy_sql, converters, instants = _driver_statements(
        table, names, connection.dialect
    )
    if len(rows) >= COPY_MIN_ROWS:
        converters = [
            (name, _text_once_per_instant(convert) if name in instants else convert)
            for name, convert in converters
        ]
    values = [
        [row[name] if convert is None else convert(row[name]) for name, convert in converters]
        for row in rows
    ]
    with driver_cursor(session) as cursor:
        if len(values) == 1:
            cursor.execute(insert_sql, values[0])
        elif len(values) < COPY_MIN_ROWS:
            cursor.executemany(insert_sql, values)
        else:
            with cursor.copy(copy_sql) as copy:
                for row_values in values:
                    copy.write_row(row_values)


def _text_once_per_instant(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """For one COPY: a timestamp column's value as text, made once per distinct instant.

    A batch's rows share a few instants (its `now`, the day's delivery window), and
    `datetime.isoformat`, which the driver calls for every value, was the costliest part
    of formatting a row. The column is timestamptz, so equal instants store the same.
    """
    texts: dict[datetime, str] = {}

    def text(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = texts.get(value)
        if found is None:
            found = texts[value] = convert(value).isoformat()
        return found

    return text


@lru_cache(maxsize=64)
def _driver_statements(
    table: Table, names: tuple[str, ...], dialect: Dialect
) -> tuple[str, str, list[tuple[str, Any]], frozenset[str]]:
    """The INSERT and COPY texts for these columns, each column's value conversion, and
    which columns are `UTCDateTime`."""
    quote = dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in names)
    into = f"{quote.format_table(table)} ({columns})"
    placeholders = ", ".join(["%s"] * len(names))
    converters = [
        (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
    ]
    return (
        f"INSERT INTO {into} VALUES ({placeholders})",
        f"COPY {into} FROM STDIN",
        converters,
        frozenset(name for name in names if isinstance(table.c[name].type, UTCDateTime)),
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
