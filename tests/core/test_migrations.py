"""The migrations and the models describe the same schema (no create_all anywhere)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import services.core.models  # noqa: F401

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
