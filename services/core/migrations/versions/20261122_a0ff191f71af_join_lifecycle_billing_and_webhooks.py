"""join lifecycle, billing and webhooks

The three features grew their schema side by side from the initial one; this joins
them into one head again.

Revision ID: a0ff191f71af
Revises: 5bce021b3afa, a74a1ac2f2d0, ac93847cb76e
Create Date: 2026-11-22 22:10:29.032184
"""

from collections.abc import Sequence

revision: str = 'a0ff191f71af'
down_revision: str | None = ('5bce021b3afa', 'a74a1ac2f2d0', 'ac93847cb76e')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
