"""Schema migrations, run by `lastmile migrate`, `make run` and the test suite alike."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

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
