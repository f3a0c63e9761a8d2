"""The key/value status table: the controller's conditions, revisions, cursors and trends,
each a JSON-ready value with the time it was set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controller.store import schema

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection


def set_status(conn: Connection, key: str, value: Any, *, now: datetime) -> None:
    """Set one status value (JSON-ready), replacing the previous one."""
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(schema.status).values(key=key, value=value, updated_at=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


def get_status(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every status value with the time it was set."""
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value, s.updated_at).order_by(s.key))
    return {row.key: {"value": row.value, "updatedAt": row.updated_at} for row in rows}
