"""outbox events and quotes by mode

A sandbox booking's `delivery.booked` went to the tenant's live endpoints, with nothing
in it saying it was a test; and a sandbox booking could spend a quote live credentials
asked for. Each outbox event and quote now records its mode; existing ones are live.

Revision ID: c3f8a1e5d7b2
Revises: b7e2c9d4f1a6
Create Date: 2026-11-24 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c3f8a1e5d7b2'
down_revision: str | None = 'b7e2c9d4f1a6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('outbox_event', 'quote')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false()),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'sandbox')
