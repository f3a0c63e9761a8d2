"""Inventories keep the device's enabled module streams (RHEL family), for server-side
applicability: advisories of another stream of a module are not judged against the device.

Revision ID: 0006_module_streams
Revises: 0005_report_digests
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_module_streams"
down_revision = "0005_report_digests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stored inventories have no streams (NULL): the release marker decides until the agent
    # reports again.
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("inventories") as batch:
        batch.add_column(sa.Column("module_streams", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inventories") as batch:
        batch.drop_column("module_streams")
