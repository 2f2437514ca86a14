"""lighter booking writes: fewer key checks and index entries per delivery

A bulk booking writes a delivery, its first event and an outbox event per delivery;
PostgreSQL's per-row foreign key checks and index entries were a large part of it.
- A delivery event's two keys (to its delivery, to its tenant) become one, to its
  delivery within its own tenant: one check instead of two, and a stronger rule (an
  event cannot name another tenant's delivery). Its target is the (tenant, id) index
  deliveries already had, now unique.
- The route index holds planned deliveries only: a booking (no route yet) adds nothing.
- Outbox events lose their tenant key and index: each is written with the change it
  announces, whose rows reference the tenant, and nothing looks them up by tenant.

Revision ID: e7a3c5b9d2f8
Revises: d5b8e0f4a1c6
Create Date: 2026-11-23 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'e7a3c5b9d2f8'
down_revision: str | None = 'd5b8e0f4a1c6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reflects keys unnamed; this names them (as PostgreSQL does) for batch mode.
_NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}
_PLANNED = sa.text('route_id IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('delivery') as batch_op:
        batch_op.drop_index('ix_delivery_tenant_id')
        batch_op.create_index('ix_delivery_tenant_id', ['tenant_id', 'id'], unique=True)
        batch_op.drop_index('ix_delivery_route_id')
        batch_op.create_index('ix_delivery_route_id', ['route_id'],
                              postgresql_where=_PLANNED, sqlite_where=_PLANNED)
    with op.batch_alter_table('delivery_event', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint('delivery_event_delivery_id_fkey', type_='foreignkey')
        batch_op.drop_constraint('delivery_event_tenant_id_fkey', type_='foreignkey')
        batch_op.create_foreign_key('delivery_event_delivery_fkey', 'delivery',
                                    ['tenant_id', 'delivery_id'], ['tenant_id', 'id'])
    with op.batch_alter_table('outbox_event', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint('outbox_event_tenant_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_outbox_event_tenant_id')


def downgrade() -> None:
    with op.batch_alter_table('outbox_event') as batch_op:
        batch_op.create_index('ix_outbox_event_tenant_id', ['tenant_id'])
        batch_op.create_foreign_key('outbox_event_tenant_id_fkey', 'tenant',
                                    ['tenant_id'], ['id'])
    with op.batch_alter_table('delivery_event', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint('delivery_event_delivery_fkey', type_='foreignkey')
        batch_op.create_foreign_key('delivery_event_tenant_id_fkey', 'tenant',
                                    ['tenant_id'], ['id'])
        batch_op.create_foreign_key('delivery_event_delivery_id_fkey', 'delivery',
                                    ['delivery_id'], ['id'])
    with op.batch_alter_table('delivery') as batch_op:
        batch_op.drop_index('ix_delivery_route_id')
        batch_op.create_index('ix_delivery_route_id', ['route_id'])
        batch_op.drop_index('ix_delivery_tenant_id')
        batch_op.create_index('ix_delivery_tenant_id', ['tenant_id', 'id'])
