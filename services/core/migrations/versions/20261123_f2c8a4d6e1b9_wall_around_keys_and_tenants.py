"""row-level security for idempotency keys and tenants

The tenant wall (d5b8e0f4a1c6) covered the tables with a `tenant_id`. Two more hold a
tenant's rows under another name: an idempotency key's `principal` is the tenant for
every merchant request (an operator's is `client:<id>`, and operators never set a
tenant), and a tenant row's `id` is the tenant itself. Same rule: while a transaction
has set `lastmile.tenant_id` it reads and writes its own rows only; without it (the
platform's jobs, operators, the key purge) it sees every row.

Revision ID: f2c8a4d6e1b9
Revises: e7a3c5b9d2f8
Create Date: 2026-11-23 16:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'f2c8a4d6e1b9'
down_revision: str | None = 'e7a3c5b9d2f8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each table and the column that names its tenant.
OWNER_COLUMNS = {'idempotency_record': 'principal', 'tenant': 'id'}


def _same_tenant(column: str) -> str:
    # The setting is read once per statement (an InitPlan), not once per row.
    return f"(SELECT coalesce(current_setting('lastmile.tenant_id', true), '')) IN ('', {column})"


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in OWNER_COLUMNS.items():
        op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE {table} FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY tenant_wall ON {table} USING ({_same_tenant(column)}) '
            f'WITH CHECK ({_same_tenant(column)})'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in OWNER_COLUMNS:
        op.execute(f'DROP POLICY IF EXISTS tenant_wall ON {table}')
        op.execute(f'ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE {table} DISABLE ROW LEVEL SECURITY')
