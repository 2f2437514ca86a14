"""tenant row-level security: PostgreSQL's second wall around each tenant's rows

Every table with a `tenant_id` gets a policy, forced on the tables' owner too: while a
transaction has set `lastmile.tenant_id` (a merchant's request does, see
services.core.db.for_tenant), it reads and writes that tenant's rows only; without it
(the platform's own jobs: planning, billing, webhook delivery) it sees every row.
The repository layer filters by tenant first; this catches a query that forgets to.
Superusers and roles with BYPASSRLS skip policies, so the application must connect as
an ordinary role (the owner of the tables). SQLite has no row-level security.

Revision ID: d5b8e0f4a1c6
Revises: c4e1d2a9b7f3
Create Date: 2026-11-23 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'd5b8e0f4a1c6'
down_revision: str | None = 'c4e1d2a9b7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    'billing_account', 'credit_note', 'delivery', 'delivery_event', 'invoice',
    'oauth_client', 'outbox_event', 'quote', 'reconciliation_finding', 'route_allocation',
    'stop', 'subscription', 'usage_event', 'webhook_attempt', 'webhook_endpoint',
    'webhook_message',
)
# The setting is read once per statement (an InitPlan), not once per row.
_SAME_TENANT = (
    "(SELECT coalesce(current_setting('lastmile.tenant_id', true), '')) IN ('', tenant_id)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TENANT_TABLES:
        op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE {table} FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY tenant_wall ON {table} USING ({_SAME_TENANT}) '
            f'WITH CHECK ({_SAME_TENANT})'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TENANT_TABLES:
        op.execute(f'DROP POLICY IF EXISTS tenant_wall ON {table}')
        op.execute(f'ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE {table} DISABLE ROW LEVEL SECURITY')
