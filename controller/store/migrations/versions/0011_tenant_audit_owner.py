"""Audit rows of Tenant documents belong to the partner each defines (not to every tenant).

A Tenant document has no `metadata.tenant`, so its audit rows were stored without a tenant,
which every read token's scope sees: a client's token read another partner's document, its
clients' names and the commit's author. New rows carry the partner's path
(`ObjectKey.owner`); this gives the stored ones the same, from their object column
(`Tenant/*/<partner>`).

Revision ID: 0011_tenant_audit_owner
Revises: 0010_planner_changes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_tenant_audit_owner"
down_revision = "0010_planner_changes"
branch_labels = None
depends_on = None

PREFIX = "Tenant/*/"  # `str(ObjectKey)` of a Tenant document at this revision
EVENTS = sa.table("audit_events", sa.column("tenant", sa.String), sa.column("object", sa.String))


def upgrade() -> None:
    op.execute(
        EVENTS.update()
        .where(EVENTS.c.tenant.is_(None), EVENTS.c.object.like(PREFIX + "%"))
        .values(tenant=sa.func.substr(EVENTS.c.object, len(PREFIX) + 1))
    )


def downgrade() -> None:
    op.execute(EVENTS.update().where(EVENTS.c.object.like(PREFIX + "%")).values(tenant=None))
