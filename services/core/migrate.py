"""Schema migrations, run by `lastmile migrate`, `make run` and the test suite alike; and
the scratch databases the test suite and benchmarks migrate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from services.core.db import MERCHANT_ROLE, PLATFORM_ROLE
from services.core.settings import get_settings

# The ordinary role that owns the tables and runs migrations, and nothing else.
OWNER_ROLE = "lastmile_owner"
ROLES = (OWNER_ROLE, MERCHANT_ROLE, PLATFORM_ROLE)
__all__ = ["MERCHANT_ROLE", "OWNER_ROLE", "PLATFORM_ROLE", "create_scratch_database", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", database_url or get_settings().resolved_migration_database_url()
    )
    return config


def upgrade(database_url: str | None = None) -> None:
    """Migrate the database (default: as LASTMILE_MIGRATION_DATABASE_URL's role, the
    tables' owner)."""
    # "heads": features may add migrations side by side; each branch applies.
    command.upgrade(alembic_config(database_url), "heads")


@dataclass(frozen=True)
class ScratchDatabase:
    """A scratch database's URL for each of the three roles."""

    owner_url: str
    merchant_url: str
    platform_url: str

    def environment(self) -> dict[str, str]:
        """The settings that make Lastmile use it, as environment variables."""
        return {
            "LASTMILE_DATABASE_URL": self.platform_url,
            "LASTMILE_MERCHANT_DATABASE_URL": self.merchant_url,
            "LASTMILE_MIGRATION_DATABASE_URL": self.owner_url,
        }


def create_scratch_database(admin: Engine, name: str) -> ScratchDatabase:
    """A new, empty PostgreSQL database `name` (dropped first if it exists) owned by
    OWNER_ROLE, with the merchant and platform roles created if missing (ordinary login
    roles: no superuser, no BYPASSRLS). `admin` must be allowed to create roles and
    databases (autocommit). The migrations grant the other two roles what they need."""
    with admin.connect() as connection:
        for role in ROLES:
            connection.execute(
                text(
                    f"DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS; "
                    "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
                )
            )
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name} OWNER {OWNER_ROLE}"))

    def url(role: str) -> str:
        return admin.url.set(database=name, username=role).render_as_string(hide_password=False)

    return ScratchDatabase(url(OWNER_ROLE), url(MERCHANT_ROLE), url(PLATFORM_ROLE))
