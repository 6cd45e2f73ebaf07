"""indexes for what the hot path looks ports and operations up by

A plug's allocation, a report's locks and the periodic pass each scanned every port (or
every operation ever made): with 10,000 ports on a host a single plug took ~100 ms more.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATING = "migration IS NOT NULL"
RUNNING = "state = 'running'"


def upgrade() -> None:
    op.create_index("ix_ports_host_bridge", "ports", ["host", "bridge"])
    op.create_index("ix_ports_operation_id", "ports", ["operation_id"])
    op.create_index("ix_ports_domain_id", "ports", ["domain_id"])
    op.create_index(
        "ix_ports_migrating",
        "ports",
        ["host"],
        postgresql_where=sa.text(MIGRATING),
        sqlite_where=sa.text(MIGRATING),
    )
    op.create_index(
        "ix_operations_running",
        "operations",
        ["created_at"],
        postgresql_where=sa.text(RUNNING),
        sqlite_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_operations_running", table_name="operations")
    for name in ("ix_ports_migrating", "ix_ports_domain_id", "ix_ports_operation_id"):
        op.drop_index(name, table_name="ports")
    op.drop_index("ix_ports_host_bridge", table_name="ports")
