"""Leader leases: the `leases` table (one row per lease, with its fencing epoch).

Revision ID: 0004_leases
Revises: 0003_device_machine_id
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_leases"
down_revision = "0003_device_machine_id"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTC_TIME, nullable=False),
        sa.Column("renewed_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("wanted_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
        sa.UniqueConstraint("name", "epoch", name=op.f("uq_leases_name_epoch")),
    )


def downgrade() -> None:
    op.drop_table("leases")
