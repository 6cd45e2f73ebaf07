"""macvtap networks have no bridge

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 23:06:05.139802
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.alter_column("bridge", existing_type=sa.VARCHAR(length=15), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.alter_column("bridge", existing_type=sa.VARCHAR(length=15), nullable=False)
