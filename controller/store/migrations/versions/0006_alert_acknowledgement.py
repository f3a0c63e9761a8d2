"""Alerts get an operator acknowledgement (who and when), beside the automatic resolution.

An alert is open until acknowledged or resolved; `resolved_at` is set when its condition clears
or an operator resolves it (issue 13 class 9, issue 16 item 4).

Revision ID: 0006_alert_acknowledgement
Revises: 0005_report_digests
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_alert_acknowledgement"
down_revision = "0005_report_digests"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # frozen copy of the schema's type at this revision


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledged_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
