"""delivery lifecycle and idempotency

Revision ID: ac93847cb76e
Revises: 2fba4621ec41
Create Date: 2026-11-22 21:38:13.712801
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.core.db

revision: str = 'ac93847cb76e'
down_revision: str | None = '2fba4621ec41'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("principal", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operation", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", services.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key"),
    )
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_record_created_at"), ["created_at"], unique=False
        )

    # New NOT NULL columns are added nullable, backfilled, then tightened, so the
    # migration also runs on a database that already holds deliveries.
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sandbox", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("tracking_token", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE delivery SET sandbox = false, attempt = 1, tracking_token = 'trk_' || id"
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.alter_column("sandbox", nullable=False)
        batch_op.alter_column("tracking_token", nullable=False)
        batch_op.alter_column("attempt", nullable=False)
        batch_op.drop_constraint("uq_delivery_idempotency", type_="unique")
        batch_op.create_index(
            batch_op.f("ix_delivery_tracking_token"), ["tracking_token"], unique=True
        )
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("request_hash")

    with op.batch_alter_table("delivery_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lat", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("lng", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("proof", sa.JSON(), nullable=True))
        batch_op.drop_index("ix_delivery_event_tenant_id")
        batch_op.create_index("ix_delivery_event_tenant_id_id", ["tenant_id", "id"], unique=False)

    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sandbox", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_column("sandbox")

    with op.batch_alter_table("delivery_event", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_event_tenant_id_id")
        batch_op.create_index("ix_delivery_event_tenant_id", ["tenant_id"], unique=False)
        batch_op.drop_column("proof")
        batch_op.drop_column("reason")
        batch_op.drop_column("lng")
        batch_op.drop_column("lat")

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.VARCHAR(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("idempotency_key", sa.VARCHAR(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_delivery_tracking_token"))
        batch_op.create_unique_constraint(
            "uq_delivery_idempotency", ["tenant_id", "idempotency_key"]
        )
        batch_op.drop_column("attempt")
        batch_op.drop_column("tracking_token")
        batch_op.drop_column("sandbox")

    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_record_created_at"))
    op.drop_table("idempotency_record")
