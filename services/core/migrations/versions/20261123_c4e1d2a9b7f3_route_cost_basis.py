"""route cost basis: the planner's facts for splitting a route's cost, billed later

A plan run no longer allocates route-cost shares itself (the planner may not import
billing): it writes, with each new or grown route, the cost basis of that revision,
and billing's sweep (`billing.allocate_route_shares`) turns it into shares.
Every revision already allocated gets its basis, stamped allocated, so revision
numbers carry on and nothing is allocated twice.

Revision ID: c4e1d2a9b7f3
Revises: 1bcb3229378f
Create Date: 2026-11-23 09:00:00.000000
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

from services.core.db import UTCDateTime

revision: str = 'c4e1d2a9b7f3'
down_revision: str | None = '1bcb3229378f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    basis = op.create_table(
        'route_cost_basis',
        sa.Column('route_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('route_cost_minor', sa.BigInteger(), nullable=False),
        sa.Column('departure_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('deliveries', sa.JSON(), nullable=False),
        sa.Column('costs', sa.JSON(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('allocated_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['route_id'], ['route.id']),
        sa.PrimaryKeyConstraint('route_id', 'revision'),
    )
    op.create_index(
        'ix_route_cost_basis_pending',
        'route_cost_basis',
        ['route_id', 'revision'],
        postgresql_where=sa.text('allocated_at IS NULL'),
        sqlite_where=sa.text('allocated_at IS NULL'),
    )
    allocation = sa.table(
        'route_allocation',
        sa.column('route_id', sa.String()),
        sa.column('revision', sa.Integer()),
        sa.column('tenant_id', sa.String()),
        sa.column('route_cost_minor', sa.BigInteger()),
        sa.column('deliveries', sa.JSON()),
        sa.column('created_at', UTCDateTime()),
    )
    route = sa.table('route', sa.column('id', sa.String()),
                     sa.column('departure_at', UTCDateTime()))  # fmt: skip
    rows = op.get_bind().execute(
        sa.select(allocation, route.c.departure_at)
        .join(route, route.c.id == allocation.c.route_id)
        .order_by(allocation.c.route_id, allocation.c.revision, allocation.c.tenant_id)
    )
    revisions: defaultdict[tuple[str, int], dict[str, Any]] = defaultdict(dict)
    for row in rows:
        made = revisions[(row.route_id, row.revision)]
        made.setdefault('deliveries', {})[row.tenant_id] = list(row.deliveries)
        made['route_cost_minor'] = max(made.get('route_cost_minor', 0), row.route_cost_minor)
        made['departure_at'] = row.departure_at
        made['created_at'] = min(made.get('created_at', row.created_at), row.created_at)
    if revisions:
        op.bulk_insert(basis, [
            {'route_id': route_id, 'revision': number, 'costs': {},
             'allocated_at': made['created_at'], **made}
            for (route_id, number), made in revisions.items()
        ])  # fmt: skip


def downgrade() -> None:
    op.drop_index('ix_route_cost_basis_pending', table_name='route_cost_basis')
    op.drop_table('route_cost_basis')
