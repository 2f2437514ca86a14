"""The connection pool: an idle connection the database dropped is replaced unseen."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.core import db


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
