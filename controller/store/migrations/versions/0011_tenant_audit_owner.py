"""Audit rows (and ApprovalRejected alerts) of Tenant documents belong to the partner each
defines, not to every tenant.

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
ALERTS = sa.table(
    "alerts",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("tenant", sa.String),
    sa.column("message", sa.Text),
)
REJECTED = "ApprovalRejected"  # its message starts with the object: `Tenant/*/<partner> was not`


def upgrade() -> None:
    op.execute(
        EVENTS.update()
        .where(EVENTS.c.tenant.is_(None), EVENTS.c.object.like(PREFIX + "%"))
        .values(tenant=sa.func.substr(EVENTS.c.object, len(PREFIX) + 1))
    )
    connection = op.get_bind()
    rejected = connection.execute(
        sa.select(ALERTS.c.id, ALERTS.c.message).where(
            ALERTS.c.kind == REJECTED,
            ALERTS.c.tenant.is_(None),
            ALERTS.c.message.like(PREFIX + "%"),
        )
    ).all()
    for alert_id, message in rejected:
        partner = message[len(PREFIX) :].split(" ", 1)[0]
        connection.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(tenant=partner))


def downgrade() -> None:
    op.execute(EVENTS.update().where(EVENTS.c.object.like(PREFIX + "%")).values(tenant=None))
    op.execute(
        ALERTS.update()
        .where(ALERTS.c.kind == REJECTED, ALERTS.c.message.like(PREFIX + "%"))
        .values(tenant=None)
    )
