"""Devices remember the machine identity their agent reports (`/etc/machine-id`, Windows
`MachineGuid`), so a second machine with the same hostname cannot silently take a device over.

Revision ID: 0003_device_machine_id
Revises: 0002_job_run_deadlines
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_device_machine_id"
down_revision = "0002_job_run_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("machine_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("machine_id")
