"""`alert_store.add_alerts`: many alerts in one executemany, keys raised once (issue 14.3)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from controller.store import Store, schema
from controller.store import alerts as alert_store

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)


def alert(n: int) -> alert_store.NewAlert:
    return alert_store.NewAlert(
        kind="InstallFailed",
        severity="warning",
        message=f"install failed on web-{n:04d}",
        tenant="acme/retail",
        details={"n": n},
        dedupe_key=f"k{n}",
    )


def test_alerts_go_in_one_executemany_and_each_key_once(store: Store) -> None:
    """2,500 alerts → one INSERT executemany; raising them again with 10 new keys inserts 10,
    in one more; alerts without a key are each raised."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ALERTS"):
            statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.write() as conn:
            first = alert_store.add_alerts(conn, [alert(n) for n in range(2500)], now=NOW)
        with store.write() as conn:
            again = alert_store.add_alerts(conn, [alert(n) for n in range(2510)], now=NOW)
        unkeyed = dataclasses.replace(alert(9999), dedupe_key=None)
        with store.write() as conn:
            twice = alert_store.add_alerts(conn, [unkeyed, unkeyed], now=NOW)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert (2500, 10, 2, 3) == (first, again, twice, len(statements))
    with store.read() as conn:
        rows = conn.execute(
            sa.select(schema.alerts.c.dedupe_key, schema.alerts.c.details).order_by(
                schema.alerts.c.id
            )
        ).all()
    assert 2512 == len(rows)
    assert ("k2509", {"n": 2509}) == tuple(rows[-3])


def test_no_alerts_is_no_statement(store: Store) -> None:
    with store.write() as conn:
        assert 0 == alert_store.add_alerts(conn, [], now=NOW)
