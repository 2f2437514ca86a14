"""Test wiring: a freshly migrated database per run, emptied after every test.

The suite runs against the database named by LASTMILE_TEST_DATABASE_URL (CI and
`make test` point it at PostgreSQL; a `sqlite:///…` URL works for a quick local run)
and the Celery broker named by LASTMILE_TEST_BROKER_URL (Redis by default).
On PostgreSQL a dedicated database `lastmile_test_<pid>` is created from scratch by
that URL's role, owned by the ordinary role `lastmile_owner` that migrates it with the
production migrations, served as `lastmile_app` (merchants' requests) and
`lastmile_platform` (everything else) as in production, so row-level security applies,
and dropped at exit. Tests commit for real (the API, Celery workers and CLI each own
their transactions), so every table is emptied afterwards (by the owner).
"""

from __future__ import annotations

import atexit
import os
import tempfile
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

_BASE_URL = os.environ.get("LASTMILE_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
_VAR_DIR = tempfile.mkdtemp(prefix="lastmile-test-")


_DATABASE = f"lastmile_test_{os.getpid()}"  # one per run, so parallel runs never collide


def admin_url() -> str:
    """The configured URL: a role that may create roles and databases."""
    from services.core.settings import normalize_database_url

    return normalize_database_url(_BASE_URL)


def _prepare_database() -> dict[str, str]:
    """Create an empty test database next to the configured one, owned by an ordinary role
    and served as the merchant and platform roles
    (`services.core.migrate.create_scratch_database`); return the settings naming it."""
    from services.core.migrate import create_scratch_database

    url = make_url(admin_url())
    if url.get_backend_name() == "sqlite":
        return {"LASTMILE_DATABASE_URL": f"sqlite:///{_VAR_DIR}/test.db"}
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    atexit.register(_drop_database, admin)
    return create_scratch_database(admin, _DATABASE).environment()


def _drop_database(admin: Engine) -> None:
    from services.core.db import get_engine, get_merchant_engine

    get_engine().dispose()
    get_merchant_engine().dispose()
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {_DATABASE} WITH (FORCE)"))
    admin.dispose()


_SETTINGS = _prepare_database()
os.environ.update(_SETTINGS)
TEST_DATABASE_URL = _SETTINGS["LASTMILE_DATABASE_URL"]  # the platform's
OWNER_DATABASE_URL = _SETTINGS.get("LASTMILE_MIGRATION_DATABASE_URL", TEST_DATABASE_URL)
os.environ["LASTMILE_VAR_DIR"] = _VAR_DIR
os.environ.setdefault("LASTMILE_ISSUER", "http://testserver")
# Test receivers listen on 127.0.0.1; the SSRF guard's own tests turn this off.
os.environ["LASTMILE_WEBHOOK_PRIVATE_TARGETS"] = "true"
os.environ["LASTMILE_BROKER_URL"] = os.environ.get(
    "LASTMILE_TEST_BROKER_URL", "redis://127.0.0.1:6379/15"
)


@pytest.fixture(scope="session")
def engine() -> Engine:
    from services.core.db import get_engine
    from services.core.migrate import upgrade

    upgrade(OWNER_DATABASE_URL)
    return get_engine()


@pytest.fixture(scope="session")
def owner_engine(engine: Engine) -> Iterator[Engine]:
    """The tables' owner: what empties them between tests (TRUNCATE, which no serving
    role may run)."""
    owner = create_engine(OWNER_DATABASE_URL)
    yield owner
    owner.dispose()


def _empty_tables(engine: Engine) -> None:
    from sqlmodel import SQLModel

    from services.core.areas import forget_shared_areas

    tables = [table.name for table in SQLModel.metadata.sorted_tables]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for name in reversed(tables):
                connection.execute(text(f"DELETE FROM {name}"))
    forget_shared_areas()  # the areas went without the ORM seeing it


@pytest.fixture
def db(engine: Engine, owner_engine: Engine) -> Iterator[Engine]:
    """A clean, migrated database for one test; emptied afterwards."""
    yield engine
    _empty_tables(owner_engine)


@pytest.fixture
def session(db: Engine) -> Iterator:
    from sqlmodel import Session

    with Session(db, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture
def app(db: Engine):
    from services.api.app import create_app

    return create_app()


@pytest.fixture
def client(app) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client
