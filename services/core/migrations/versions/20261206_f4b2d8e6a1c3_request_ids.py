"""request ids: a booking's request id stays with its delivery, events and messages

The structured logs (services.core.logs) name the request that booked a delivery on
every later line about it: the outbox dispatch, the webhook delivery, the planner and
billing's allocation read it from these columns.

Revision ID: f4b2d8e6a1c3
Revises: e3a9c1f7b5d2
Create Date: 2026-12-06 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f4b2d8e6a1c3'
down_revision: str | None = 'e3a9c1f7b5d2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('delivery', 'outbox_event', 'webhook_message')


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('request_id', sa.String(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'request_id')
