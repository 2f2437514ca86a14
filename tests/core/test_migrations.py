"""The migrations and the models describe the same schema (no create_all anywhere)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import services.core.models  # noqa: F401
from services.core.migrate import alembic_config, is_up_to_date, script_heads
from services.core.settings import get_settings

# What PostgreSQL keeps that the models do not name, because the application never
# writes or reads it by name (services.deliveries.repository.events_since).
DATABASE_ONLY = {"txid", "ix_delivery_event_tenant_txid"}


def _described(object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (reflected and compare_to is None and name in DATABASE_ONLY)


def test_the_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _described}
        )
        assert compare_metadata(context, SQLModel.metadata) == []


def test_the_cheap_heads_are_alembics():
    assert script_heads() == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_only_a_database_at_every_head_is_up_to_date(engine, tmp_path):
    url = get_settings().resolved_migration_database_url()  # the tables' owner migrates
    owner = create_engine(url)
    assert is_up_to_date(url)
    assert not is_up_to_date(f"sqlite:///{tmp_path}/empty.db")
    with owner.begin() as connection:
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    try:
        assert not is_up_to_date(url)
    finally:
        with owner.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
        owner.dispose()
    assert is_up_to_date(url)
