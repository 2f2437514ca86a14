"""idempotency keys by mode: a merchant's sandbox and live keys are two key spaces

A sandbox booking with key K followed by a live one with the same key and input
replayed the sandbox delivery, and the live order was never routed. The mode joins
the key's primary key; existing keys are live ones.

Revision ID: b7e2c9d4f1a6
Revises: a1d4f7c2e9b3
Create Date: 2026-11-24 10:00:00.000000
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b7e2c9d4f1a6'
down_revision: str | None = 'a1d4f7c2e9b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _primary_key(['principal', 'sandbox', 'key'], add_sandbox=True)


def downgrade() -> None:
    op.execute('DELETE FROM idempotency_record WHERE sandbox')
    _primary_key(['principal', 'key'], add_sandbox=False)


def _primary_key(columns: list[str], add_sandbox: bool) -> None:
    # PostgreSQL named the key idempotency_record_pkey; SQLite named it nothing, and
    # batch mode rebuilds its table with the new key in place of the old.
    # (SQLAlchemy warns that the rebuilt table's key differs from the reflected one:
    # that is the point.)
    postgresql = op.get_bind().dialect.name == 'postgresql'
    with (
        warnings.catch_warnings(),
        op.batch_alter_table('idempotency_record') as batch_op,
    ):
        warnings.filterwarnings('ignore', 'Table .* specifies columns', sa.exc.SAWarning)
        if add_sandbox:
            batch_op.add_column(
                sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false())
            )
        if postgresql:
            batch_op.drop_constraint('idempotency_record_pkey', type_='primary')
        batch_op.create_primary_key('idempotency_record_pkey', columns)
        if not add_sandbox:
            batch_op.drop_column('sandbox')
