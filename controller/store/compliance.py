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
