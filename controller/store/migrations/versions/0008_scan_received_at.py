"""Devices keep when the server received their last scan: freshness ("scan older than N") is
judged by the server's clock, never by the agent's `scannedAt`; and whether their running kernel
is older than the newest installed one (`kernel_reboot`), an OS reboot signal of its own.

Revision ID: 0008_scan_received_at
Revises: 0007_inventory_platform
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_scan_received_at"
down_revision = "0007_inventory_platform"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("last_scan_received_at", UTC_TIME, nullable=True))
        # set by the next inventory or catalogue evaluation (`store.findings`)
        batch.add_column(
            sa.Column("kernel_reboot", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The receive time of the stored scan where its header is still kept; else (pruned) the
    # scan's own time, the best figure there is (it may be wrong: the next scan replaces it).
    devices = sa.table(
        "devices",
        sa.column("id", sa.String()),
        sa.column("last_scan_at", UTC_TIME),
        sa.column("last_scan_received_at", UTC_TIME),
    )
    scans = sa.table(
        "scans",
        sa.column("device_id", sa.String()),
        sa.column("scanned_at", UTC_TIME),
        sa.column("received_at", UTC_TIME),
    )
    received = (
        sa.select(scans.c.received_at)
        .where(
            scans.c.device_id == devices.c.id,
            scans.c.scanned_at == devices.c.last_scan_at,
        )
        .scalar_subquery()
    )
    op.execute(
        devices.update()
        .where(devices.c.last_scan_at.is_not(None))
        .values(last_scan_received_at=sa.func.coalesce(received, devices.c.last_scan_at))
    )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("kernel_reboot")
        batch.drop_column("last_scan_received_at")
