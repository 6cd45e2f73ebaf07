"""Overlay networks: VNI, hosts' underlay, per-host overlay state, migrations

Revision ID: 0007
Revises: 0006_dhcp_leases
Create Date: 2026-11-30 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006_dhcp_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("networks") as batch:
        batch.add_column(sa.Column("vni", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_networks_vni", ["vni"])
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("underlay", sa.String(length=45), nullable=True))
        batch.add_column(sa.Column("underlay_mtu", sa.Integer(), nullable=True))
    with op.batch_alter_table("realisations") as batch:
        batch.add_column(
            sa.Column("remote_entries", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("overlay_digest", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("overlay_error", sa.Text(), nullable=True))
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
    with op.batch_alter_table("ports") as batch:
        batch.add_column(sa.Column("migration", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("migration")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("result")
    with op.batch_alter_table("realisations") as batch:
        batch.drop_column("overlay_error")
        batch.drop_column("overlay_digest")
        batch.drop_column("remote_entries")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("underlay_mtu")
        batch.drop_column("underlay")
    with op.batch_alter_table("networks") as batch:
        batch.drop_constraint("uq_networks_vni", type_="unique")
        batch.drop_column("vni")
