"""Inventories keep what server-side applicability needs beyond packages: the enabled module
streams (RHEL family: advisories of another stream of a module are not judged against the device)
and the Windows OS the device reports (product name, installation type, architecture, hotpatch
enrolment: which product's KB and which update channel it takes).

Revision ID: 0007_inventory_platform
Revises: 0006_alert_acknowledgement
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_inventory_platform"
down_revision = "0006_alert_acknowledgement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stored inventories have neither (NULL): release markers and the standard channel decide
    # until the agent reports again.
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("inventories") as batch:
        batch.add_column(sa.Column("module_streams", json_type, nullable=True))
        batch.add_column(sa.Column("windows", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inventories") as batch:
        batch.drop_column("windows")
        batch.drop_column("module_streams")
