"""The connection pool (an idle connection the database dropped is replaced unseen) and
the driver-level inserts (they store what SQLAlchemy would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, text
from sqlmodel import Session, select

from services.core import db
from services.core.models import OutboxEvent


def test_a_dropped_idle_connection_is_replaced_before_use(engine, monkeypatch):
    if engine.dialect.name != "postgresql":
        pytest.skip("terminating a backend needs PostgreSQL")
    pooled = db.make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with pooled.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as admin:  # the database drops it while it sits in the pool
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        with pooled.connect() as connection:
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        pooled.dispose()


def test_a_busy_pool_does_not_ping(engine):
    """Checked out again at once, a connection is trusted: no extra round trip."""
    pooled = db.make_engine(engine.url.render_as_string(hide_password=False))
    statements: list[str] = []
    try:
        with pooled.connect() as connection:
            connection.execute(text("SELECT 1"))
        pooled.dialect.do_ping = lambda *_: statements.append("ping") or True  # type: ignore[method-assign]
        with pooled.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert statements == []
    finally:
        pooled.dispose()


@pytest.mark.usefixtures("db")  # emptied afterwards
def test_rows_written_by_the_driver_are_stored_exactly_as_sqlalchemy_stores_them(
    engine, monkeypatch
):
    """insert_rows runs INSERT (few rows) or INSERT from one JSON document (many) on the
    driver's cursor, after each column type's conversion: what comes back must equal a
    Core INSERT's rows."""
    table = OutboxEvent.__table__
    india = timezone(timedelta(hours=5, minutes=30))  # stored as UTC, by the column's type
    payload = {"note": "tab\there\nline \\ back\\slash \r ünïcode ✓", "none": None, "x": [1.5]}
    count = 60

    def rows(prefix: str) -> list[dict]:
        return [
            {
                "id": f"{prefix}{i:03}",
                "tenant_id": None,
                "topic": "delivery.booked",
                "payload": {**payload, "i": i},
                # A few instants, repeated and in two offsets (each is formatted once).
                "created_at": datetime(2026, 11, 23, 9, 30 + i % 3, tzinfo=india),
                "dispatched_at": None
                if i % 2
                else datetime(2026, 11, 23, 4, 30 + i % 4, tzinfo=UTC)
                if i % 3
                else datetime(2026, 11, 23, 10, tzinfo=india),
            }
            for i in range(count)
        ]

    with Session(engine) as session:
        monkeypatch.setattr(db, "BULK_MIN_ROWS", count)
        db.insert_rows(session, table, rows("bulk_"))
        monkeypatch.setattr(db, "BULK_MIN_ROWS", count + 1)
        db.insert_rows(session, table, rows("executed_"))
        session.connection().execute(insert(table), rows("core_"))
        session.commit()
        stored = {event.id: event for event in session.exec(select(OutboxEvent)).all()}
    assert len(stored) == 3 * count
    for i in range(count):
        core = stored[f"core_{i:03}"].model_dump(exclude={"id"})
        assert stored[f"bulk_{i:03}"].model_dump(exclude={"id"}) == core
        assert stored[f"executed_{i:03}"].model_dump(exclude={"id"}) == core
        assert core["payload"] == {**payload, "i": i}
        assert core["created_at"] == datetime(2026, 11, 23, 4, i % 3, tzinfo=UTC)
        assert core["dispatched_at"] == (
            None
            if i % 2
            else datetime(2026, 11, 23, 4, 30 + i % 4, tzinfo=UTC)
            if i % 3
            else datetime(2026, 11, 23, 4, 30, tzinfo=UTC)
        )


@pytest.mark.usefixtures("db")
def test_a_naive_timestamp_is_refused_in_bulk_too(engine, monkeypatch):
    table = OutboxEvent.__table__
    aware = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    rows = [
        {"id": f"naive_{i}", "tenant_id": None, "topic": "t", "payload": {}, "created_at": at}
        for i, at in enumerate([aware] * 3 + [aware.replace(tzinfo=None)])
    ]
    monkeypatch.setattr(db, "BULK_MIN_ROWS", 2)
    with Session(engine) as session, pytest.raises(ValueError, match="naive"):
        db.insert_rows(session, table, rows)
