"""delivery events know their transaction (PostgreSQL)

The subscription feed followed event ids, which are made before their transaction
commits: an event whose transaction made its id before another's and committed after it
was skipped. Each event now records the id of its (top-level) transaction, and the feed
asks for what became visible since the snapshot of its last look
(services.deliveries.repository.events_since), indexed per tenant. PostgreSQL only, and
a column of the database alone: the application never writes it (SQLite's feed, one
writer at a time, follows ids).

Revision ID: e5a7c9b1d3f2
Revises: d8f1b3a5c7e9
Create Date: 2026-11-24 13:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'e5a7c9b1d3f2'
down_revision: str | None = 'd8f1b3a5c7e9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # (xid8 as text as bigint: an epoch-qualified id, far below 2^63.)
    op.execute(
        'ALTER TABLE delivery_event ADD COLUMN txid bigint NOT NULL '
        'DEFAULT (pg_current_xact_id()::text::bigint)'
    )
    op.execute('CREATE INDEX ix_delivery_event_tenant_txid ON delivery_event (tenant_id, txid)')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP INDEX ix_delivery_event_tenant_txid')
    op.execute('ALTER TABLE delivery_event DROP COLUMN txid')
