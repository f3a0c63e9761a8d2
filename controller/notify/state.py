"""Notifications and the store: channel state in the status table, new events from the store.

- `StatusWriter(store)` is the Notifier's `on_status`: it keeps `notify:<channel-id>` current,
  so `patchctl status` and the read API show failing channels.
- `new_events(conn, now=...)` returns the alerts and audit events stored since the last call
  (the read cursor is the status key `notify-cursor`). The first call starts at the newest rows,
  so a new installation does not replay its history; call it in a write transaction.
  `read_events` also returns the position read up to, for `Notifier.submit(upto=...)`.
- Delivery positions: `ProgressWriter(store)` is the Notifier's `on_progress`: it stores each
  channel's settled position (`{"alert": id, "audit": id}`, moved only after a send or a
  give-up) under `notify-cursor:<channel-id>`. A new leader calls `resume(conn, channel_ids)`
  before its first read: the read cursor goes back to the least settled position, and the
  returned positions (`Notifier(settled=...)`) keep each channel from getting again what it
  has. So nothing read is lost when the leader dies, and only what was in flight is sent twice.
  Give it the leader's fenced store: a replaced leader cannot move a position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog

from controller.notify.delivery import STATUS_KEY_PREFIX, ChannelStatus, status_key
from controller.notify.events import Event, from_alert, from_audit
from controller.store import Connection, DatabaseError, Store
from controller.store import alerts as alert_store
from controller.store import audit as audit_store
from controller.store import status as status_store

log = structlog.get_logger("patchctl.notify")

CURSOR_KEY = "notify-cursor"
CHANNEL_CURSOR_PREFIX = "notify-cursor:"
SOURCES = ("alert", "audit")
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
                status_store.set_status(
                    conn, status_key(status.channel_id), status.as_dict(), now=self.clock()
                )
        except DatabaseError as exc:
            log.warning("notify status not saved", channel=status.channel_id, error=str(exc))


def channel_states(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every stored channel state, by channel id."""
    rows = status_store.values_with_prefix(conn, STATUS_KEY_PREFIX)
    return {key.removeprefix(STATUS_KEY_PREFIX): value for key, value in rows.items()}


def channel_cursor_key(channel_id: str) -> str:
    """The status key of a channel's settled position."""
    return f"{CHANNEL_CURSOR_PREFIX}{channel_id}"


class ProgressWriter:
    """Stores a channel's settled position under `notify-cursor:<channel-id>`.

    Raises what the store raises (`LeaseLostError` from a fenced store whose lease is gone):
    the Notifier logs it and tries again after its next send.
    """

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, channel_id: str, position: dict[str, int]) -> None:
        with self.store.write() as conn:
            status_store.set_status(
                conn, channel_cursor_key(channel_id), position, now=self.clock()
            )


def resume(
    conn: Connection, channel_ids: Iterable[str], *, now: datetime
) -> dict[str, dict[str, int]]:
    """The settled positions of these channels, by channel id; moves the read cursor back to
    the least of them so that what was read but not delivered is read again.

    A channel without a stored position (a new installation, a new channel, an upgrade) is
    given the read cursor's, and it is stored at once: what is read from now on is kept for it
    even if this leader dies before delivering anything. Call it in the leader's (fenced) write
    transaction, before the first `read_events`.
    """
    stored = status_store.get_value(conn, CURSOR_KEY)
    cursor = _newest(conn) if not stored else {src: int(stored.get(src, 0)) for src in SOURCES}
    keys = {channel_cursor_key(cid): cid for cid in channel_ids}
    rows = status_store.get_values(conn, keys)
    settled = {
        keys[key]: {source: int(value.get(source, 0)) for source in SOURCES}
        for key, value in rows.items()
    }
    for position in settled.values():
        for source, number in position.items():
            cursor[source] = min(number, cursor[source])
    if cursor != stored:
        status_store.set_status(conn, CURSOR_KEY, cursor, now=now)
    for cid in sorted(set(keys.values()) - set(settled)):
        settled[cid] = dict(cursor)
        status_store.set_status(conn, channel_cursor_key(cid), cursor, now=now)
    return settled


def _newest(conn: Connection) -> dict[str, int]:
    """The newest alert and audit rows: where a new installation starts (no history replay)."""
    return {"alert": alert_store.newest_id(conn), "audit": audit_store.newest_id(conn)}


def new_events(conn: Connection, *, now: datetime, limit: int = BATCH) -> list[Event]:
    """Alerts and audit events stored since the last call, oldest first; moves the cursor."""
    return read_events(conn, now=now, limit=limit)[0]


def read_events(
    conn: Connection, *, now: datetime, limit: int = BATCH
) -> tuple[list[Event], dict[str, int]]:
    """`new_events`, and the position (`{"alert": id, "audit": id}`) read up to."""
    stored = status_store.get_value(conn, CURSOR_KEY)
    if not stored:
        cursor = _newest(conn)
        status_store.set_status(conn, CURSOR_KEY, cursor, now=now)
        return [], cursor
    alert_rows = alert_store.alerts_after(conn, int(stored.get("alert", 0)), limit=limit)
    audit_rows = audit_store.events_after(conn, int(stored.get("audit", 0)), limit=limit)
    cursor = {
        "alert": alert_rows[-1]["id"] if alert_rows else int(stored.get("alert", 0)),
        "audit": audit_rows[-1]["id"] if audit_rows else int(stored.get("audit", 0)),
    }
    if cursor != stored:
        status_store.set_status(conn, CURSOR_KEY, cursor, now=now)
    events = [from_alert(row) for row in alert_rows] + [from_audit(row) for row in audit_rows]
    return sorted((ev for ev in events if ev is not None), key=lambda ev: ev.at), cursor
