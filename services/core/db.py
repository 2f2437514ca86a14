"""Database engines, sessions and the column types that behave the same on SQLite and PostgreSQL.

On PostgreSQL three roles touch the database (see `services.core.migrate`): the tables'
owner runs migrations and nothing else; merchants' requests run on the merchant engine
(`lastmile_app`), which row-level security confines to the tenant and mode a
transaction names, and to nothing when it names none; the platform's jobs (planning,
billing, webhooks, the CLI, operators, the token endpoint, public tracking) run on the
platform engine (`lastmile_platform`), which sees every row. Each engine checks the role
it connects as before serving (`check_role`).
"""

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

from services.core.principal import LIVE, SANDBOX, Merchant
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


def make_engine(url: str, serves: str | None = None) -> Engine:
    """An engine for `url`; on PostgreSQL one that `serves` "merchant" or "platform"
    checks on its first connection that the role is fit for it (None: migrations)."""
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

    if serves is not None:

        @event.listens_for(engine, "first_connect")
        def _check_role(dbapi_connection: Any, _record: Any) -> None:
            check_role(dbapi_connection, serves)

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
    """The platform's engine: every tenant's rows (jobs, CLI, operators, public pages)."""
    return make_engine(get_settings().resolved_database_url(), serves="platform")


@lru_cache
def get_merchant_engine() -> Engine:
    """The engine merchants' requests run on: on PostgreSQL, a role that row-level
    security confines to the tenant and mode each transaction names. The same engine as
    the platform's on SQLite, which has no row-level security."""
    settings = get_settings()
    url = settings.resolved_merchant_database_url()
    if url == settings.resolved_database_url() and url.startswith("sqlite"):
        return get_engine()
    return make_engine(url, serves="merchant")


def connect_serving_engines() -> None:
    """Connect the merchant and platform engines once, so that a role unfit to serve is
    refused when a process starts (`check_role`) rather than at its first request."""
    for engine in (get_merchant_engine(), get_engine()):
        with engine.connect():
            pass


class UnsafeDatabaseRole(RuntimeError):
    """The database role would serve with more rights than its job needs."""


# The roles of migrations d8f1b3a5c7e9 on: merchants' requests, and the platform's jobs.
MERCHANT_ROLE = "lastmile_app"
PLATFORM_ROLE = "lastmile_platform"

_ROLE_FACTS = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relowner = r.oid AND n.nspname = current_schema()) AS owns,
       EXISTS (SELECT 1 FROM pg_roles m
               WHERE m.rolname = %(merchant)s AND pg_has_role(r.oid, m.oid, 'MEMBER')),
       EXISTS (SELECT 1 FROM pg_roles p
               WHERE p.rolname = %(platform)s AND pg_has_role(r.oid, p.oid, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = current_user
"""


def check_role(connection: Any, serves: str) -> None:
    """Refuse (UnsafeDatabaseRole) to serve `serves` ("merchant" or "platform") as a role
    that skips or can switch off row-level security (a superuser, a BYPASSRLS role, the
    tables' owner), or that is not the role of that job: a merchant connection with
    the platform's rights would see every tenant. `connection` is a driver (psycopg)
    connection or a SQLAlchemy one."""
    raw = getattr(connection, "connection", connection)
    driver = getattr(raw, "driver_connection", raw)
    with driver.cursor() as cursor:
        cursor.execute(_ROLE_FACTS, {"merchant": MERCHANT_ROLE, "platform": PLATFORM_ROLE})
        name, superuser, bypass, owns, merchant, platform = cursor.fetchone()
    problems = [
        problem
        for problem, present in (
            ("is a superuser", superuser),
            ("has BYPASSRLS", bypass),
            ("owns tables (the owner only runs migrations)", owns),
            (f"is a member of {PLATFORM_ROLE}", serves == "merchant" and platform),
            (f"is not a member of {MERCHANT_ROLE}", serves == "merchant" and not merchant),
            (f"is not a member of {PLATFORM_ROLE}", serves == "platform" and not platform),
        )
        if present
    ]
    if problems:
        raise UnsafeDatabaseRole(
            f"Refusing to serve {serves} requests as database role {name!r}: it "
            + "; ".join(problems)
            + ". See the README, 'Running past one machine'."
        )


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Requests, CLI commands and tasks own their transaction through this; services
    below never commit on their own.
    """
    with _committed(Session(engine or get_engine(), expire_on_commit=False)) as session:
        yield session


@contextmanager
def _committed(session: Session) -> Iterator[Session]:
    """The session, committed if the block succeeds, rolled back if it raises, closed."""
    with session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# Row-level security (PostgreSQL): the merchant a session's transactions act for.
_MERCHANT = "lastmile.merchant"


def merchant_session(merchant: Merchant) -> Session:
    """A session on the merchant engine whose every transaction acts for `merchant`.

    The repository layer filters every query by tenant and mode; on PostgreSQL each
    transaction of this session also sets `lastmile.tenant_id` and `lastmile.mode`,
    which the tables' row-level security policies enforce: a query that forgot its
    filter reads nothing of other tenants or of the other mode, and cannot write for
    them. The session must not be handed to work that needs another tenant's rows.
    """
    session = Session(get_merchant_engine(), expire_on_commit=False)
    session.info[_MERCHANT] = merchant
    return session


@contextmanager
def merchant_transaction(merchant: Merchant) -> Iterator[Session]:
    """`transaction()` for a merchant: on the merchant engine, confined to it."""
    with _committed(merchant_session(merchant)) as session:
        yield session


@event.listens_for(Session, "after_begin")
def _confine_transaction(session: Session, _transaction: Any, connection: Any) -> None:
    merchant: Merchant | None = session.info.get(_MERCHANT)
    if merchant is not None and connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        driver.execute(
            "SELECT set_config('lastmile.tenant_id', %s, true), "
            "set_config('lastmile.mode', %s, true)",
            (merchant.tenant_id, SANDBOX if merchant.sandbox else LIVE),
        )


@contextmanager
def across_tenants(session: Session) -> Iterator[Session]:
    """A session that sees every tenant's rows, for a read that must count them all (an
    area's remaining capacity); nothing of theirs may reach the caller. For a merchant's
    session on PostgreSQL it is a platform session of its own (a separate connection and
    transaction, read only); otherwise the session itself."""
    if session.info.get(_MERCHANT) is None or session.get_bind().dialect.name != "postgresql":
        yield session
        return
    with Session(get_engine()) as everyone:
        try:
            yield everyone
        finally:
            everyone.rollback()


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
