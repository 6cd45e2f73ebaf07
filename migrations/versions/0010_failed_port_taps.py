"""a failed port's tap name is free: UNIQUE(host, tap) only over ports with a device

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_TAP = "state NOT IN ('failed', 'released')"
#: 0002 left the constraint unnamed; this names it as PostgreSQL does, and SQLite's batch
#: copy reflects it under the same name
NAMES = {"uq": "%(table_name)s_%(column_0_name)s_%(column_1_name)s_key"}


def upgrade() -> None:
    with op.batch_alter_table("ports", naming_convention=NAMES) as batch:
        batch.drop_constraint("ports_host_tap_key", type_="unique")
    op.create_index(
        "uq_ports_host_tap_live",
        "ports",
        ["host", "tap"],
        unique=True,
        postgresql_where=sa.text(LIVE_TAP),
        sqlite_where=sa.text(LIVE_TAP),
    )


def downgrade() -> None:
    # two rows may share a name now: the failed one gives it up (it has no device)
    op.execute(
        "UPDATE ports SET tap = substr(id, 1, 15) WHERE state IN ('failed', 'released') AND EXISTS "
        "(SELECT 1 FROM ports AS other WHERE other.host = ports.host AND other.tap = ports.tap "
        "AND other.id <> ports.id)"
    )
    op.drop_index("uq_ports_host_tap_live", table_name="ports")
    with op.batch_alter_table("ports", naming_convention=NAMES) as batch:
        batch.create_unique_constraint("ports_host_tap_key", ["host", "tap"])
