"""roles and fail-closed row-level security on every table

The tenant wall of d5b8e0f4a1c6 and f2c8a4d6e1b9 failed open: a transaction that named
no tenant (or the tenant '') saw every tenant's rows, the role that served requests
owned the tables and could switch the wall off, and nine tables had no policy at all.
Now three roles (services.core.migrate, services.core.db):

- the tables' owner (whoever runs this migration) runs migrations only; row-level
  security is not forced on it, and start-up refuses to serve as it;
- lastmile_app, merchants' requests: on a table holding tenant data it reads and writes
  the rows of the tenant (and, where rows have one, the mode) its transaction names in
  `lastmile.tenant_id` and `lastmile.mode`, and nothing when it names none; billing is
  live-only; it reads the service areas and fleet (no tenant's data), the routes its
  own stops or shares ride, the price plans it subscribes or was invoiced under, the
  lines of its invoices; and nothing of the platform's own tables;
- lastmile_platform, the platform's jobs: every row.

Both roles must exist (created here as NOLOGIN group roles if the owner may create
roles; otherwise a database administrator creates them first, see the README) and get
DML on every table, now and in later migrations by the owner, but no TRUNCATE (which
row-level security does not see). Delivery events gain the mode of their delivery so the
wall can keep modes apart on them too.

Revision ID: d8f1b3a5c7e9
Revises: c3f8a1e5d7b2
Create Date: 2026-11-24 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd8f1b3a5c7e9'
down_revision: str | None = 'c3f8a1e5d7b2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MERCHANT = 'lastmile_app'
PLATFORM = 'lastmile_platform'

# The settings are read once per statement (an InitPlan), not once per row; unset or
# empty, they match nothing.
_TENANT = "(SELECT nullif(current_setting('lastmile.tenant_id', true), ''))"
_SANDBOX = "(SELECT current_setting('lastmile.mode', true) = 'sandbox')"
_LIVE = "(SELECT current_setting('lastmile.mode', true) = 'live')"
_MINE = f'tenant_id = {_TENANT}'
_MINE_IN_MODE = f'{_MINE} AND sandbox = {_SANDBOX}'
_MINE_LIVE = f'{_MINE} AND {_LIVE}'

# What a merchant's transaction may touch, table by table: (command, condition).
MERCHANT_POLICIES: dict[str, tuple[str, str]] = {
    'delivery': ('ALL', _MINE_IN_MODE),
    'delivery_event': ('ALL', _MINE_IN_MODE),
    'quote': ('ALL', _MINE_IN_MODE),
    'outbox_event': ('ALL', _MINE_IN_MODE),
    'webhook_endpoint': ('ALL', _MINE_IN_MODE),
    'webhook_message': ('ALL', _MINE_IN_MODE),
    'webhook_attempt': ('ALL', _MINE_IN_MODE),
    'idempotency_record': ('ALL', f'principal = {_TENANT} AND sandbox = {_SANDBOX}'),
    'tenant': ('SELECT', f'id = {_TENANT}'),
    'oauth_client': ('SELECT', _MINE),
    # Billing and routes are live alone: sandbox is never routed nor billed.
    'usage_event': ('ALL', _MINE_LIVE),
    'billing_account': ('ALL', _MINE_LIVE),
    'subscription': ('SELECT', _MINE_LIVE),
    'invoice': ('SELECT', _MINE_LIVE),
    'credit_note': ('SELECT', _MINE_LIVE),
    'route_allocation': ('SELECT', _MINE_LIVE),
    'stop': ('ALL', _MINE_LIVE),
    'invoice_line': (
        'SELECT',
        'EXISTS (SELECT 1 FROM invoice i WHERE i.id = invoice_line.invoice_id)',
    ),
    'price_plan': (
        'SELECT',
        'EXISTS (SELECT 1 FROM subscription s WHERE s.plan_id = price_plan.id) '
        'OR EXISTS (SELECT 1 FROM invoice i WHERE i.plan_id = price_plan.id)',
    ),
    # A cancelled or rescheduled delivery leaves its route (one less stop).
    'route': (
        'SELECT_UPDATE',
        'EXISTS (SELECT 1 FROM stop s WHERE s.route_id = route.id) '
        'OR EXISTS (SELECT 1 FROM route_allocation a WHERE a.route_id = route.id)',
    ),
    # The catalogue every booking checks against: no tenant's data.
    'service_area': ('SELECT', 'true'),
    'vehicle': ('SELECT', 'true'),
    'shift': ('SELECT', 'true'),
}
# The platform's alone: plan runs, reconciliation, the cost bases of whole routes.
PLATFORM_ONLY = ('plan_run', 'reconciliation_run', 'reconciliation_finding', 'route_cost_basis')
TABLES = (*MERCHANT_POLICIES, *PLATFORM_ONLY)
# The earlier wall, forced on the owner, open to a transaction naming no tenant.
OLD_WALL = (
    'billing_account', 'credit_note', 'delivery', 'delivery_event', 'invoice',
    'oauth_client', 'outbox_event', 'quote', 'reconciliation_finding', 'route_allocation',
    'stop', 'subscription', 'usage_event', 'webhook_attempt', 'webhook_endpoint',
    'webhook_message', 'idempotency_record', 'tenant',
)


def upgrade() -> None:
    op.add_column(
        'delivery_event',
        sa.Column('sandbox', sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        'UPDATE delivery_event e SET sandbox = true FROM delivery d '
        'WHERE d.tenant_id = e.tenant_id AND d.id = e.delivery_id AND d.sandbox'
    )
    op.execute(_CREATE_ROLES)
    roles = f'{MERCHANT}, {PLATFORM}'
    dml = 'SELECT, INSERT, UPDATE, DELETE'
    op.execute(f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {dml} ON TABLES TO {roles}')
    for table in OLD_WALL:
        op.execute(f'DROP POLICY IF EXISTS tenant_wall ON {table}')
        op.execute(f'ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY')
    for table in TABLES:
        op.execute(f'GRANT {dml} ON {table} TO {roles}')
        op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY platform ON {table} TO {PLATFORM} USING (true) WITH CHECK (true)'
        )
    for table, (command, condition) in MERCHANT_POLICIES.items():
        if command == 'SELECT_UPDATE':
            op.execute(
                f'CREATE POLICY merchant_read ON {table} FOR SELECT TO {MERCHANT} '
                f'USING ({condition})'
            )
            op.execute(
                f'CREATE POLICY merchant_update ON {table} FOR UPDATE TO {MERCHANT} '
                f'USING ({condition}) WITH CHECK ({condition})'
            )
        elif command == 'SELECT':
            op.execute(
                f'CREATE POLICY merchant ON {table} FOR SELECT TO {MERCHANT} USING ({condition})'
            )
        else:
            op.execute(
                f'CREATE POLICY merchant ON {table} TO {MERCHANT} '
                f'USING ({condition}) WITH CHECK ({condition})'
            )


# Group roles, if the owner may create roles and they do not exist yet: deployments
# give their login roles membership (or create login roles of these names themselves).
_CREATE_ROLES = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{MERCHANT}') THEN
    CREATE ROLE {MERCHANT} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{PLATFORM}') THEN
    CREATE ROLE {PLATFORM} NOLOGIN;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE EXCEPTION 'Create the database roles {MERCHANT} and {PLATFORM} before migrating '
    '(see the README, "Running past one machine").';
END $$
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            for policy in ('platform', 'merchant', 'merchant_read', 'merchant_update'):
                op.execute(f'DROP POLICY IF EXISTS {policy} ON {table}')
            op.execute(f'ALTER TABLE {table} DISABLE ROW LEVEL SECURITY')
        op.execute(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE '
            f'ON TABLES FROM {MERCHANT}, {PLATFORM}'
        )
        op.execute(f'REVOKE ALL ON {", ".join(TABLES)} FROM {MERCHANT}, {PLATFORM}')
        open_wall = (
            "(SELECT coalesce(current_setting('lastmile.tenant_id', true), '')) IN ('', {})"
        )
        for table in OLD_WALL:
            column = {'idempotency_record': 'principal', 'tenant': 'id'}.get(table, 'tenant_id')
            condition = open_wall.format(column)
            op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
            op.execute(f'ALTER TABLE {table} FORCE ROW LEVEL SECURITY')
            op.execute(
                f'CREATE POLICY tenant_wall ON {table} USING ({condition}) '
                f'WITH CHECK ({condition})'
            )
    op.drop_column('delivery_event', 'sandbox')
