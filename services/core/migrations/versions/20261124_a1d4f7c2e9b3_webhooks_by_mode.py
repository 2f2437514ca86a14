"""webhooks by mode: endpoints, messages and attempts are live or sandbox

A merchant's sandbox credentials must reach none of its live webhook endpoints or
messages (and the reverse), so each row says which mode it belongs to. Existing rows
were all made by live credentials or for live events... except those a sandbox token
created, which nothing recorded: they become live, as they behaved.

Revision ID: a1d4f7c2e9b3
Revises: f2c8a4d6e1b9
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a1d4f7c2e9b3'
down_revision: str | None = 'f2c8a4d6e1b9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('webhook_endpoint', 'webhook_message', 'webhook_attempt')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false()),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'sandbox')
