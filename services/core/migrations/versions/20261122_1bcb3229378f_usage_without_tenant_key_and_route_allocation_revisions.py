"""usage without a per-row tenant key, lighter usage indexes; route allocation revisions

Usage events lose their foreign key to tenant: the only writer joins each event to
its tenant's billing account, locked in the same statement, so the per-row check (the
largest cost of bulk ingestion) proved nothing more. On PostgreSQL a trigger keeps an
account that has usage from being deleted, so no event outlives its tenant. Their two wide B-trees
become one narrow one (tenant, billed month) and a BRIN on the billed month, which
rows arrive in (nearly) the order of: each B-tree cost about a third of an insert.

Route allocations gain a revision (a late insertion allocates what it added, and
earlier shares never change), the route cost each revision was made at, and the
deliveries each share pays for. Existing rows become revision 1 of their route.

Revision ID: 1bcb3229378f
Revises: 2b77538f99af
Create Date: 2026-11-22 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '1bcb3229378f'
down_revision: str | None = '2b77538f99af'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reflects keys unnamed; this names them (as PostgreSQL does) for batch mode.
_NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey", "pk": "%(table_name)s_pkey"}

# PostgreSQL only, like the triggers that make usage append-only (SQLite is the
# single-process embedded default, where the application is the only writer).
_GUARD = (
    """
    CREATE FUNCTION lastmile_billing_account_keeps_usage() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM usage_event WHERE tenant_id = OLD.tenant_id) THEN
            RAISE EXCEPTION 'the billing account of tenant % has usage events',
                OLD.tenant_id;
        END IF;
        RETURN OLD;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER billing_account_keeps_usage BEFORE DELETE ON billing_account
    FOR EACH ROW EXECUTE FUNCTION lastmile_billing_account_keeps_usage()
    """,
)
_DROP_GUARD = (
    "DROP TRIGGER IF EXISTS billing_account_keeps_usage ON billing_account",
    "DROP FUNCTION IF EXISTS lastmile_billing_account_keeps_usage()",
)
_STOPS = {
    "postgresql": """COALESCE((SELECT json_agg(s.delivery_id ORDER BY s.sequence) FROM stop s
                  WHERE s.route_id = route_allocation.route_id
                  AND s.tenant_id = route_allocation.tenant_id), '[]'::json)""",
    "sqlite": """(SELECT json_group_array(delivery_id) FROM (
                  SELECT s.delivery_id FROM stop s
                  WHERE s.route_id = route_allocation.route_id
                  AND s.tenant_id = route_allocation.tenant_id ORDER BY s.sequence))""",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('usage_event', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint('usage_event_tenant_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_usage_tenant_meter_at')
        batch_op.drop_index('ix_usage_billed')
        batch_op.create_index('ix_usage_tenant_billed', ['tenant_id', 'billed_period'])
        batch_op.create_index('ix_usage_billed_brin', ['billed_period'],
                              postgresql_using='brin', postgresql_with={'autosummarize': 'on'})
    if dialect == "postgresql":
        for statement in _GUARD:
            op.execute(statement)

    with op.batch_alter_table('route_allocation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('route_cost_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('deliveries', sa.JSON(), nullable=True))
    op.execute(
        "UPDATE route_allocation SET revision = 1, route_cost_minor = ("
        " SELECT sum(r.amount_minor) FROM route_allocation r"
        " WHERE r.route_id = route_allocation.route_id),"
        f" deliveries = {_STOPS[dialect]}"
    )
    with op.batch_alter_table('route_allocation', naming_convention=_NAMING) as batch_op:
        batch_op.alter_column('revision', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('route_cost_minor', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('deliveries', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_constraint('route_allocation_pkey', type_='primary')
        batch_op.create_primary_key(
            'route_allocation_pkey', ['route_id', 'revision', 'tenant_id']
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DELETE FROM route_allocation WHERE revision > 1")
    with op.batch_alter_table('route_allocation', naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint('route_allocation_pkey', type_='primary')
        batch_op.create_primary_key('route_allocation_pkey', ['route_id', 'tenant_id'])
        batch_op.drop_column('deliveries')
        batch_op.drop_column('route_cost_minor')
        batch_op.drop_column('revision')

    if dialect == "postgresql":
        for statement in _DROP_GUARD:
            op.execute(statement)
    with op.batch_alter_table('usage_event', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_billed_brin')
        batch_op.drop_index('ix_usage_tenant_billed')
        batch_op.create_index('ix_usage_billed', ['billed_period', 'tenant_id', 'meter'])
        batch_op.create_index('ix_usage_tenant_meter_at', ['tenant_id', 'meter', 'at'])
        batch_op.create_foreign_key('usage_event_tenant_id_fkey', 'tenant', ['tenant_id'], ['id'])
