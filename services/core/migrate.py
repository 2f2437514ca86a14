"""Schema migrations, run by `lastmile migrate`, `make run` and the test suite alike; and
the scratch databases the test suite and benchmarks migrate."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, exc, text

from services.core.db import MERCHANT_ROLE, PLATFORM_ROLE
from services.core.settings import get_settings, normalize_database_url

if TYPE_CHECKING:
    from alembic.config import Config

# The ordinary role that owns the tables and runs migrations, and nothing else.
OWNER_ROLE = "lastmile_owner"
ROLES = (OWNER_ROLE, MERCHANT_ROLE, PLATFORM_ROLE)
__all__ = ["MERCHANT_ROLE", "OWNER_ROLE", "PLATFORM_ROLE", "create_scratch_database", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", database_url or get_settings().resolved_migration_database_url()
    )
    return config


def upgrade(database_url: str | None = None) -> None:
    """Migrate the database (default: as LASTMILE_MIGRATION_DATABASE_URL's role, the
    tables' owner)."""
    if is_up_to_date(database_url):
        return  # nothing to do: skip loading Alembic, the scripts and the models (seconds)
    from alembic import command

    # "heads": features may add migrations side by side; each branch applies.
    command.upgrade(alembic_config(database_url), "heads")


def is_up_to_date(database_url: str | None = None) -> bool:
    """Whether the database stands at every head of the migration scripts. Cheap: the
    scripts are parsed, not imported, and the database answers one query. Anything
    unexpected (no database yet, a script this cannot read) answers False."""
    heads = script_heads()
    if not heads:
        return False
    url = database_url or get_settings().resolved_migration_database_url()
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version"))
            return set(current.scalars()) == heads
    except exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def script_heads() -> set[str]:
    """The revisions that no script revises (what `alembic heads` finds), read from the
    scripts' `revision` and `down_revision` literals; empty if one cannot be read."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = _literals(path, ("revision", "down_revision"))
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str):
            return set()
        revisions.add(revision)
        revised.update([down] if isinstance(down, str) else down or ())  # type: ignore[arg-type]
    return revisions - revised


def _literals(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """The module-level `name = <literal>` (or `name: T = <literal>`) values of a file."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                found[target.id] = None
    return found


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


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A scratch database (`create_scratch_database`) next to LASTMILE_DATABASE_URL
    (default: the local PostgreSQL), made the application's database while the block
    runs and dropped afterwards; yields the owner's URL, to migrate it. For benchmarks."""
    from services.core.db import get_engine

    base = normalize_database_url(
        os.environ.get("LASTMILE_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
    )
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    scratch = create_scratch_database(admin, name)
    try:
        os.environ.update(scratch.environment())
        yield scratch.owner_url
    finally:
        get_engine().dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
