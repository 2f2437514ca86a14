"""fleet modelling

Vans get a cargo volume, shifts a driver's break and a route-length limit, plan runs a
count of late bookings inserted into earlier routes. Every new NOT NULL column has a
server default, so existing rows are valid at once: 10 m3 of cargo space, a 30-minute
break starting 4 to 5 hours into the shift, no insertions.

Revision ID: b63f6c3b9502
Revises: a0ff191f71af
Create Date: 2026-11-22 22:20:35.948971
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b63f6c3b9502"
down_revision: str | None = "a0ff191f71af"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deliveries_inserted", sa.Integer(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("shift", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("break_minutes", sa.Integer(), server_default="30", nullable=False)
        )
        batch_op.add_column(
            sa.Column("break_earliest_minutes", sa.Integer(), server_default="240", nullable=False)
        )
        batch_op.add_column(
            sa.Column("break_latest_minutes", sa.Integer(), server_default="300", nullable=False)
        )
        batch_op.add_column(sa.Column("max_route_minutes", sa.Integer(), nullable=True))

    with op.batch_alter_table("vehicle", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "capacity_volume_cm3", sa.Integer(), server_default="10000000", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("plan_run", schema=None) as batch_op:
        batch_op.drop_column("deliveries_inserted")

    with op.batch_alter_table("vehicle", schema=None) as batch_op:
        batch_op.drop_column("capacity_volume_cm3")

    with op.batch_alter_table("shift", schema=None) as batch_op:
        batch_op.drop_column("max_route_minutes")
        batch_op.drop_column("break_latest_minutes")
        batch_op.drop_column("break_earliest_minutes")
        batch_op.drop_column("break_minutes")
