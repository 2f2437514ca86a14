"""leases: one active scheduler among several

Several `lastmile scheduler` processes may run; the one holding the `scheduler` lease
sends the periodic tasks, the others wait to take over (services.core.leader). The
platform's alone: merchants' requests never see it.

Revision ID: e3a9c1f7b5d2
Revises: e5a7c9b1d3f2
Create Date: 2026-12-06 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'e3a9c1f7b5d2'
down_revision: str | None = 'e5a7c9b1d3f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLATFORM = 'lastmile_platform'


def upgrade() -> None:
    op.create_table(
        'lease',
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('holder', sa.String(), nullable=False),
        sa.Column('acquired_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON lease TO {PLATFORM}')
        op.execute('ALTER TABLE lease ENABLE ROW LEVEL SECURITY')
        op.execute(f'CREATE POLICY platform ON lease TO {PLATFORM} USING (true) WITH CHECK (true)')


def downgrade() -> None:
    op.drop_table('lease')
