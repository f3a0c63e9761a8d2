"""Devices keep digests of what the planner reads of their last scan and inventory, and whether
the agent has reported since its enrolment, so reports that change nothing trigger no pass.

Revision ID: 0005_report_digests
Revises: 0004_leases
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_report_digests"
down_revision = "0004_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing devices start without digests: their next scan and inventory count as changed.
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("scan_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("inventory_digest", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("awaiting_report", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("awaiting_report")
        batch.drop_column("inventory_digest")
        batch.drop_column("scan_digest")
