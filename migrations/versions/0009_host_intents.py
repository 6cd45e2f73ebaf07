"""per-host desired and applied revisions (durable intent)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # no rows: a host's row appears with the first transaction that sends it something
    op.create_table(
        "host_intents",
        sa.Column("host", sa.String(length=63), nullable=False),
        sa.Column("desired", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("changed_at", app.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", app.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("resent_at", app.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )


def downgrade() -> None:
    op.drop_table("host_intents")
