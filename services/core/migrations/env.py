"""Alembic environment: the URL comes from Lastmile's settings unless the caller set one."""

from alembic import context
from sqlmodel import SQLModel

import services.core.models  # noqa: F401  (registers every table on the metadata)
from services.core.db import make_engine
from services.core.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_migration_database_url()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
