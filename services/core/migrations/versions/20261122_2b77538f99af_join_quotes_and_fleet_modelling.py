"""join quotes and fleet modelling

Quotes and the fleet modelling grew side by side from the same head; this joins them.

Revision ID: 2b77538f99af
Revises: 44637aab442f, b63f6c3b9502
Create Date: 2026-11-22 22:36:28.385703
"""

from collections.abc import Sequence

revision: str = '2b77538f99af'
down_revision: str | None = ('44637aab442f', 'b63f6c3b9502')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
