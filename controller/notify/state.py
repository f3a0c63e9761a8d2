"""Notifications and the store: channel state in the status table, new events from the store.

- `StatusWriter(store)` is the Notifier's `on_status`: it keeps `notify:<channel-id>` current,
  so `patchctl status` and the read API show failing channels.
- `new_events(conn, now=...)` returns the alerts and audit events stored since the last call
  (the cursor is the status key `notify-cursor`). The first call starts at the newest rows, so
  a new installation does not replay its history; call it in a write transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from controller.notify.delivery import STATUS_KEY_PREFIX, ChannelStatus, status_key
from controller.notify.events import Event, from_alert, from_audit
from controller.store import Store, history, schema

log = structlog.get_logger("patchctl.notify")

CURSOR_KEY = "notify-cursor"
BATCH = 1000


class StatusWriter:
    """Stores each channel state it is given under `notify:<channel-id>` (best effort)."""

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, status: ChannelStatus) -> None:
        try:
            with self.store.write() as conn:
                history.set_status(
                    conn, status_key(status.channel_id), status.as_dict(), now=self.clock()
                )
        except SQLAlchemyError as exc:
            log.warning("notify status not saved", channel=status.channel_id, error=str(exc))


def channel_states(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every stored channel state, by channel id."""
    s = schema.status.c
    rows = conn.execute(
        sa.select(s.key, s.value).where(s.key.like(STATUS_KEY_PREFIX + "%")).order_by(s.key)
    )
    return {key.removeprefix(STATUS_KEY_PREFIX): value for key, value in rows}


def new_events(conn: Connection, *, now: datetime, limit: int = BATCH) -> list[Event]:
    """Alerts and audit events stored since the last call, oldest first; moves the cursor."""
    a, e = schema.alerts.c, schema.audit_events.c
    stored = conn.execute(
        sa.select(schema.status.c.value).where(schema.status.c.key == CURSOR_KEY)
    ).scalar()
    if not stored:
        cursor = {
            "alert": conn.execute(sa.select(sa.func.max(a.id))).scalar() or 0,
            "audit": conn.execute(sa.select(sa.func.max(e.id))).scalar() or 0,
        }
        history.set_status(conn, CURSOR_KEY, cursor, now=now)
        return []
    alert_rows = (
        conn.execute(
            sa.select(
                a.id,
                a.tenant,
                a.device_id,
                a.kind,
                a.severity,
                a.message,
                a.details,
                a.dedupe_key,
                a.created_at,
            )
            .where(a.id > int(stored.get("alert", 0)))
            .order_by(a.id)
            .limit(limit)
        )
        .mappings()
        .all()
    )
    audit_rows = (
        conn.execute(
            sa.select(e.id, e.at, e.tenant, e.actor, e.action, e.object, e.revision, e.details)
            .where(e.id > int(stored.get("audit", 0)))
            .order_by(e.id)
            .limit(limit)
        )
        .mappings()
        .all()
    )
    cursor = {
        "alert": alert_rows[-1]["id"] if alert_rows else int(stored.get("alert", 0)),
        "audit": audit_rows[-1]["id"] if audit_rows else int(stored.get("audit", 0)),
    }
    if cursor != stored:
        history.set_status(conn, CURSOR_KEY, cursor, now=now)
    events = [from_alert(dict(row)) for row in alert_rows] + [
        from_audit(dict(row)) for row in audit_rows
    ]
    return sorted((ev for ev in events if ev is not None), key=lambda ev: ev.at)
