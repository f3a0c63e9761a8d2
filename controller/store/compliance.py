"""Compliance records: one row per device and baseline, as the last reconcile wrote them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.store import schema
from controller.store.scopes import in_scope, is_device

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def list_compliance(
    conn: Connection,
    *,
    scope: str,
    device_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = schema.compliance.c
    query = sa.select(
        c.device_id, c.baseline, c.tenant, c.state, c.revision, c.evaluated_at, c.patches
    ).where(in_scope(c.tenant, scope))
    if device_id is not None:
        query = query.where(is_device(c.device_id, device_id))
    rows = conn.execute(
        query.order_by(c.tenant, c.device_id, c.baseline).limit(limit).offset(offset)
    )
    return [dict(row) for row in rows.mappings()]


def counts(conn: Connection, *, scope: str | None) -> dict[tuple[str, str, str], int]:
    """Compliance rows of `scope` (None: all) counted by (tenant, baseline, state), in that
    order."""
    c = schema.compliance.c
    rows = conn.execute(
        sa.select(c.tenant, c.baseline, c.state, sa.func.count())
        .where(in_scope(c.tenant, scope))
        .group_by(c.tenant, c.baseline, c.state)
        .order_by(c.tenant, c.baseline, c.state)
    )
    return {(tenant, baseline, state): int(n) for tenant, baseline, state, n in rows}
