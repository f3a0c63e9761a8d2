"""What changed of the planner's inputs, for incremental reconciles (issue 14 items 1-2).

Every store function that changes something `controller.store.observed` reads (a device row,
its facts, labels, enrolment or retirement; its scan or feed findings; its jobs; the patch
catalogue) records the change here, in the caller's transaction: a row per changed device in
`planner_changes`, or a catalogue row (`device_id` NULL). Recording sits in the store functions,
so no caller can forget it, and the table is shared, so followers' ingest, `patchctl jobs cancel`
and feed imports in other processes are seen by the leader's reconciler.

A reader keeps a `Mark`: the highest sequence number it read and the numbers below it it has not
seen (gaps). On PostgreSQL a sequence number is taken when a row is inserted, not when its
transaction commits, so a row with a lower number can become visible after a higher one was
read; the gaps are re-read until they fill. A gap that never fills (a rolled-back transaction)
is dropped after `GAP_LIMIT` newer ones or at the next full pass, whose fresh read of the whole
store covers whatever a dropped gap could have held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from controller.store import database, schema

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.engine import Connection

GAP_WINDOW = 1000  # a full pass looks this far below the high-water mark for in-flight numbers
GAP_LIMIT = 1000  # gaps kept at most (the newest); older ones are rolled-back transactions


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a reader stands: `high`, the highest sequence number read; `gaps`, the numbers
    below it not seen yet (rows of transactions still in flight when `high` was read)."""

    high: int = 0
    gaps: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Delta:
    """The changes recorded after a `Mark`: device ids, whether the catalogue changed, and the
    reader's next mark."""

    devices: frozenset[str]
    catalogue: bool
    mark: Mark


def record_devices(conn: Connection, device_ids: Iterable[str], *, now: datetime) -> None:
    """Record that the planner inputs of `device_ids` changed (in the caller's transaction)."""
    rows = [{"device_id": device_id, "recorded_at": now} for device_id in dict.fromkeys(device_ids)]
    database.insert_many(conn, schema.planner_changes, rows, skip_existing=False)


def record_catalogue(conn: Connection, *, now: datetime) -> None:
    """Record that the patch catalogue changed (an import; in the caller's transaction)."""
    conn.execute(schema.planner_changes.insert(), [{"device_id": None, "recorded_at": now}])


def mark(conn: Connection) -> Mark:
    """The mark of a reader that has just read the whole store (a full pass): the high-water
    mark, with the numbers of the last `GAP_WINDOW` not yet visible as gaps. Read it before
    the store, in the same transaction: a change committed in between is read twice, never
    missed."""
    c = schema.planner_changes.c
    high = conn.execute(sa.select(sa.func.max(c.seq))).scalar_one() or 0
    floor = max(high - GAP_WINDOW, 0)
    seen = set(conn.execute(sa.select(c.seq).where(c.seq > floor)).scalars())
    if not seen:
        return Mark(high=high)
    # numbers below the oldest row kept were pruned, not in flight
    return Mark(high=high, gaps=frozenset(range(min(seen) + 1, high + 1)) - seen)


def read(conn: Connection, since: Mark) -> Delta:
    """The changes recorded after `since` (and in its gaps), with the next mark."""
    c = schema.planner_changes.c
    after = c.seq > since.high
    query = sa.select(c.seq, c.device_id).where(
        sa.or_(after, c.seq.in_(sorted(since.gaps))) if since.gaps else after
    )
    devices: set[str] = set()
    catalogue = False
    seqs: set[int] = set()
    for seq, device_id in conn.execute(query):
        seqs.add(seq)
        if device_id is None:
            catalogue = True
        else:
            devices.add(device_id)
    high = max(seqs | {since.high})
    gaps = (set(since.gaps) | set(range(since.high + 1, high))) - seqs
    if len(gaps) > GAP_LIMIT:
        gaps = set(sorted(gaps)[-GAP_LIMIT:])
    return Delta(frozenset(devices), catalogue, Mark(high=high, gaps=frozenset(gaps)))


def prune(conn: Connection, *, before: datetime) -> int:
    """Delete change rows recorded before `before`; returns how many went. Safe once every
    reader made a full pass since `before` (the reconciler's resync is more frequent)."""
    c = schema.planner_changes.c
    result = conn.execute(schema.planner_changes.delete().where(c.recorded_at < before))
    return max(result.rowcount, 0)
