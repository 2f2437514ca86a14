"""Schema migrations, run by `lastmile migrate`, `make run` and the test suite alike; and
the scratch databases the test suite and benchmarks migrate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

# The ordinary role that owns scratch databases: superusers (and BYPASSRLS roles) skip
# row-level security, so the application must connect as a role like this one.
APP_ROLE = "lastmile_app"

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str | None = None) -> None:
    # "heads": features may add migrations side by side; each branch applies.
    command.upgrade(alembic_config(database_url), "heads")


def create_scratch_database(admin: Engine, name: str) -> str:
    """A new, empty PostgreSQL database `name` (dropped first if it exists) owned by
    APP_ROLE, created if missing; returns its URL for that role. `admin` must be allowed
    to create roles and databases (autocommit)."""
    with admin.connect() as connection:
        connection.execute(
            text(
                f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name} OWNER {APP_ROLE}"))
    return admin.url.set(database=name, username=APP_ROLE).render_as_string(hide_password=False)


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A scratch database (`create_scratch_database`) next to LASTMILE_DATABASE_URL
    (default: the local PostgreSQL), made the application's database while the block
    runs and dropped afterwards; yields its URL. For benchmarks."""
    from services.core.db import get_engine
    from services.core.settings import normalize_database_url

    base = make_url(normalize_database_url(
        os.environ.get("LASTMILE_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
    ))  # fmt: skip
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    url = create_scratch_database(admin, name)
    try:
        os.environ["LASTMILE_DATABASE_URL"] = url
        yield url
    finally:
        get_engine().dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
