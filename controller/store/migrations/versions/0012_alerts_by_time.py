"""Alerts listed newest first from an index: `alerts (created_at, id)`.

Every alert listing (`patchctl alerts`, `GET /api/v1/alerts`, the dashboard) reads the newest
alerts of a scope: `tenant` equal to the scope, under it, or none. The `(tenant, created_at)`
index cannot give that order for three tenant conditions, so each listing sorted the whole
table: 0.9 s for 20 alerts among the 800,000 a month of installs raises at 100,000 devices
(two info alerts a finished install), growing with the table. Walking this index from its
end stops at the page's last row: 2 ms.

Revision ID: 0012_alerts_by_time
Revises: 0011_tenant_audit_owner
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0012_alerts_by_time"
down_revision = "0011_tenant_audit_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_created_at_id", "alerts", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_created_at_id", table_name="alerts")
