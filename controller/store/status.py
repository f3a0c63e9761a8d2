"""The key/value status table: the controller's conditions, revisions, cursors and trends,
each a JSON-ready value with the time it was set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from controller.store import database, schema

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from datetime import datetime

    from sqlalchemy.engine import Connection


def set_status(conn: Connection, key: str, value: Any, *, now: datetime) -> None:
    """Set one status value (JSON-ready), replacing the previous one."""
    value_param = sa.bindparam("value", type_=schema.status.c.value.type)
    conn.execute(_upsert(conn, value_param), {"status_key": key, "value": value, "updated_at": now})


def set_encoded(conn: Connection, values: Mapping[str, str], *, now: datetime) -> None:
    """Set status values given as JSON text already encoded (key → text), replacing the
    previous ones, in one statement: a caller that encodes large values before its write
    transaction does not spend SQLite's one write lock on it (the reconciler's plan summary,
    issue 14), and an approval that changes the pending approvals of every shard writes them
    at once (one statement each was 256 statements, and each left a cycle of SQLAlchemy
    objects for the collector: 10,000 objects, an 80 ms collection)."""
    if not values:
        return
    text: Any = sa.type_coerce(sa.bindparam("value"), sa.Text())
    if conn.dialect.name == "postgresql":
        text = sa.cast(text, postgresql.JSONB)
    conn.execute(
        _upsert(conn, text),
        [{"status_key": key, "value": value, "updated_at": now} for key, value in values.items()],
    )


def _upsert(conn: Connection, value: Any) -> Any:
    """The status row's INSERT ... ON CONFLICT (key) DO UPDATE, both engines: the key and
    `updated_at` bound as `status_key` and `updated_at`, the value as `value` (an expression
    around a bound parameter)."""
    insert = database.conflict_insert(conn.dialect.name)
    statement = insert(schema.status).values(
        key=sa.bindparam("status_key"), value=value, updated_at=sa.bindparam("updated_at")
    )
    return statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    )


def updated_times(conn: Connection, keys: Collection[str]) -> dict[str, datetime]:
    """When each value under `keys` was last set, by key (a key never set is left out); reads
    only that column."""
    s = schema.status.c
    found: dict[str, datetime] = {}
    for chunk in database.in_chunks(sorted(keys)):
        rows = conn.execute(sa.select(s.key, s.updated_at).where(s.key.in_(chunk)))
        found.update({row.key: row.updated_at for row in rows})
    return found


def get_status(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every status value with the time it was set."""
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value, s.updated_at).order_by(s.key))
    return {row.key: {"value": row.value, "updatedAt": row.updated_at} for row in rows}


def get_value(conn: Connection, key: str) -> Any:
    """The value stored under `key`, or None when there is none."""
    s = schema.status.c
    return conn.execute(sa.select(s.value).where(s.key == key)).scalar()


def get_values(conn: Connection, keys: Collection[str]) -> dict[str, Any]:
    """The values stored under `keys`, by key; a key without a value is left out."""
    if not keys:
        return {}
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value).where(s.key.in_(sorted(keys))))
    return {row.key: row.value for row in rows}


def values_with_prefix(conn: Connection, prefix: str) -> dict[str, Any]:
    """Every value whose key starts with `prefix`, by whole key, in key order."""
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value).where(s.key.like(prefix + "%")).order_by(s.key))
    return {row.key: row.value for row in rows}


def lock_value(conn: Connection, key: str, *, now: datetime) -> Any:
    """The value under `key` (`{}` stored first when there is none), locked until the
    transaction ends: PostgreSQL `SELECT ... FOR UPDATE`; SQLite serialises its writers."""
    insert = database.conflict_insert(conn.dialect.name)
    conn.execute(
        insert(schema.status)
        .values(key=key, value={}, updated_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    s = schema.status.c
    return conn.execute(sa.select(s.value).where(s.key == key).with_for_update()).scalar()
