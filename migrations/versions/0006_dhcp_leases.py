"""the DHCP leases each host reports for a network

Revision ID: 0006_dhcp_leases
Revises: 0005
Create Date: 2026-11-30 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_dhcp_leases"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("realisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leases", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("realisations", schema=None) as batch_op:
        batch_op.drop_column("leases")
