"""Leader leases in the database, with a fencing epoch; and the one-serve lock of SQLite.

Several `serve` replicas may share one PostgreSQL database; exactly one of them reconciles and
runs the chores (DESIGN §7). It holds the lease row `reconciler` of the `leases` table:

- **acquire**: a replica takes the lease when the row is missing or its `expires_at` has
  passed; taking it over raises `epoch` by one (the fencing token) and names the new holder.
- **renew**: the holder moves `expires_at` forward every few seconds; a renewal matches holder
  and epoch, so a replica that was taken over cannot renew what is no longer its own.
- **check** (the fence): every write transaction of the leader starts with it. It reads the row
  with `FOR KEY SHARE` and requires this holder, this epoch and an unexpired lease, or raises
  `LeaseLostError` and the transaction writes nothing. Because the epoch is a key column (the
  unique (name, epoch) constraint), that lock blocks a takeover until the leader's transaction
  has committed or rolled back, while the leader's own renewals (which leave the epoch alone)
  go through. So a paused or partitioned leader that wakes up after it was replaced writes
  nothing, and the new leader's first pass sees everything the old one committed.

Why a lease row and not an advisory lock: a session advisory lock dies with its connection and
would hand over at once, but it fences nothing — a leader whose connection dropped and came
back keeps running its pass and writes alongside the new one — and it ties leadership to one
pooled connection. The row gives an epoch to check inside the very transaction that writes,
and status can show who leads.

Times come from the database on PostgreSQL (`clock_timestamp()`), so replicas on hosts with
different clocks agree on expiry; SQLite has one process and uses the wall clock.

SQLite stays single-replica: `lock_sqlite` takes an exclusive lock on a file next to the
database (`<db>-serve.lock`, released by the kernel when the process dies, even by kill -9) and
refuses a second `serve` with a message naming the one that runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller import errors
from controller.store import database, schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from controller.store.database import Store

RECONCILER = "reconciler"  # the lease of the reconcile loop and the chores


class LeaseLostError(errors.WaitUntilError):
    """This replica does not hold the lease it writes under (any more): the write is refused."""


class ReplicaConflictError(errors.WaitUntilError):
    """A second `serve` on a SQLite database that one is serving already (wait-until: the
    lock is free once that process stops; no longer a StoreError, callers catch it by name)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease row: who holds it, under which epoch, until when."""

    name: str
    holder: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    wanted_at: datetime | None

    def as_dict(self, *, now: datetime) -> dict[str, Any]:
        """The lease as status shows it; `valid` is False once it has expired."""
        return {
            "holder": self.holder,
            "epoch": self.epoch,
            "acquiredAt": self.acquired_at.isoformat(),
            "renewedAt": self.renewed_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "valid": self.expires_at > now,
        }


def replica_id() -> str:
    """`host:pid:nonce`: names this process in the lease; the nonce tells apart two processes
    with the same host name and pid (containers that all run as pid 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def database_now(conn: Connection) -> datetime:
    """The time leases are measured in: the database server's clock on PostgreSQL (one clock
    for every replica), the wall clock on SQLite (one process)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    return datetime.now(tz=UTC)


def read(conn: Connection, name: str = RECONCILER) -> Lease | None:
    """The lease row, or None before anyone took it."""
    row = conn.execute(sa.select(schema.leases).where(schema.leases.c.name == name)).first()
    return Lease(**row._asdict()) if row is not None else None


def acquire(
    conn: Connection,
    *,
    holder: str,
    ttl: timedelta,
    now: datetime,
    name: str = RECONCILER,
    force: bool = False,
) -> Lease | None:
    """Take the lease for `ttl` when nobody holds it, it has expired, or `holder` has it
    already (then it is renewed under the same epoch); `force` takes it from a holder known to
    be gone (SQLite, under `lock_sqlite`). Taking it from another holder raises the epoch by
    one. Returns the lease now held, or None when another holder's lease is still valid."""
    l = schema.leases.c  # noqa: E741 - the table's columns, as elsewhere in the store
    insert = database.conflict_insert(conn.dialect.name)
    created = conn.execute(
        insert(schema.leases)
        .values(
            name=name,
            holder=holder,
            epoch=1,
            acquired_at=now,
            renewed_at=now,
            expires_at=now + ttl,
            wanted_at=None,
        )
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(l.epoch)
    ).first()
    if created is None:
        renewed = conn.execute(
            schema.leases.update()
            .where(l.name == name, l.holder == holder)
            .values(renewed_at=now, expires_at=now + ttl)
            .returning(l.epoch)
        ).first()
        if renewed is None:
            free = sa.true() if force else l.expires_at <= now
            taken = conn.execute(
                schema.leases.update()
                .where(l.name == name, free)
                .values(
                    holder=holder,
                    epoch=l.epoch + 1,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=now + ttl,
                )
                .returning(l.epoch)
            ).first()
            if taken is None:
                return None
    return read(conn, name)


def renew(
    conn: Connection,
    *,
    holder: str,
    epoch: int,
    ttl: timedelta,
    now: datetime,
    name: str = RECONCILER,
) -> Lease | None:
    """Extend the lease held by `holder` under `epoch` to `now + ttl`; None when it is not
    held so (any more)."""
    l = schema.leases.c  # noqa: E741
    renewed = conn.execute(
        schema.leases.update()
        .where(l.name == name, l.holder == holder, l.epoch == epoch)
        .values(renewed_at=now, expires_at=now + ttl)
        .returning(l.epoch)
    ).first()
    return read(conn, name) if renewed is not None else None


def release(
    conn: Connection, *, holder: str, epoch: int, now: datetime, name: str = RECONCILER
) -> bool:
    """Give the lease up (a clean stop), so another replica takes it at its next attempt
    instead of waiting for the expiry. False when it was not held so."""
    l = schema.leases.c  # noqa: E741
    result = conn.execute(
        schema.leases.update()
        .where(l.name == name, l.holder == holder, l.epoch == epoch)
        .values(expires_at=now)
    )
    return result.rowcount == 1


def check(
    conn: Connection, *, holder: str, epoch: int, now: datetime | None, name: str = RECONCILER
) -> None:
    """The fence, first in every write transaction of the leader: raise `LeaseLostError`
    unless `holder` holds the lease under `epoch` and it has not expired at `now` (None: the
    expiry is not checked, for a holder that cannot have a rival). On PostgreSQL the row stays
    locked (`FOR KEY SHARE`) until the transaction ends, so no takeover can commit in between."""
    l = schema.leases.c  # noqa: E741
    unexpired = sa.true() if now is None else l.expires_at > now
    held = conn.execute(
        sa.select(l.epoch)
        .where(l.name == name, l.holder == holder, l.epoch == epoch, unexpired)
        .with_for_update(read=True, key_share=True)
    ).first()
    if held is None:
        current = read(conn, name)
        raise LeaseLostError(
            f"lease {name!r} is no longer held by {holder} (epoch {epoch}); "
            + (
                f"held by {current.holder} (epoch {current.epoch}) until "
                f"{current.expires_at.isoformat()}"
                if current is not None
                else "nobody holds it"
            )
        )


def want(conn: Connection, *, now: datetime, name: str = RECONCILER) -> None:
    """A follower asks the leader for a pass (agents reported to it, its webhook was called):
    the leader sees `wanted_at` move at its next renewal."""
    l = schema.leases.c  # noqa: E741
    conn.execute(schema.leases.update().where(l.name == name).values(wanted_at=now))


# --- SQLite: one serve at a time -------------------------------------------------------------


@dataclass(slots=True)
class ServeLock:
    """The exclusive lock of one `serve` on a SQLite database; `release()` when stopping."""

    path: Path
    fd: int | None

    def release(self) -> None:
        # The file stays: unlinking it while another process waits on the old inode would let
        # two processes hold "the" lock at once.
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None


def lock_sqlite(store: Store, *, now: datetime) -> ServeLock | None:
    """On SQLite, lock `<database>-serve.lock` for this process or raise
    `ReplicaConflictError` naming the process that holds it; None on PostgreSQL, where
    replicas share the database through the lease.

    The lock is an `flock`, which the kernel drops when the process ends however it ends, so a
    `serve` killed with -9 never blocks the next one."""
    if store.dialect != "sqlite":
        return None
    path = Path(str(store.engine.url.database) + "-serve.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise ReplicaConflictError(
            f"database {store.url} is already served by {holder}; SQLite supports one "
            "`patchctl serve` at a time. Stop that one first, or use PostgreSQL "
            "(--db postgresql+psycopg://...) to run several replicas."
        ) from None
    os.ftruncate(fd, 0)
    os.write(
        fd,
        json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": now.isoformat()}
        ).encode(),
    )
    return ServeLock(path, fd)


def _read_holder(fd: int) -> str:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {found['pid']} on {found['host']} (since {found['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
