"""Change tracking for incremental reconciles (issue 14 items 1-2): `planner_changes`.

One row per changed device (or per catalogue change, `device_id` NULL), written in the same
transaction as the change; the reconciler reads the rows after its high-water mark.

Revision ID: 0010_planner_changes
Revises: 0009_day2_operations
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_planner_changes"
down_revision = "0009_day2_operations"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # frozen copy of the schema's type at this revision


def upgrade() -> None:
    op.create_table(
        "planner_changes",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_planner_changes_recorded_at"), "planner_changes", ["recorded_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_planner_changes_recorded_at"), table_name="planner_changes")
    op.drop_table("planner_changes")
