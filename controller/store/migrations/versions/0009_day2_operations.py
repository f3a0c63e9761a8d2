"""Day-2 operations: retired devices and enrolment tokens with a use limit (issue 16 item 4).

`devices.retired_at`: a retired device keeps its row and history (jobs, alerts, audit) but leaves
planning, compliance and listings; re-enrolling its name brings it back. `tokens.max_uses` and
`tokens.uses`: an enrolment token refuses the enrolment after `max_uses` (None: no limit); `uses`
is counted by one conditional UPDATE, atomic on both engines.

Revision ID: 0009_day2_operations
Revises: 0008_scan_received_at
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_day2_operations"
down_revision = "0008_scan_received_at"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # frozen copy of the schema's type at this revision


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("retired_at", UTC_TIME, nullable=True))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("max_uses", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("uses", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("uses")
        batch.drop_column("max_uses")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("retired_at")
