"""Which `serve` replica reconciles: this one keeps trying to hold the reconciler lease.

Every replica serves agents; only the holder of the lease (`controller.store.leases`) runs the
reconcile loop and the chores. A thread renews the lease every `RENEW_EVERY`; a follower tries
to take it at the same pace and does once it has expired, so a leader that dies is replaced
within `LEASE_TTL + RENEW_EVERY` (10 s), and one that stops cleanly releases it at once.

The leader's reconciler and chores write through `Leadership.store`, a store fenced by the lease:
each write transaction first checks that this replica still holds the lease under the epoch it
was granted, so a replica that lost it (paused, partitioned, replaced) writes nothing.

A follower that is told about new work (agents reported to it, its webhook was called) cannot
reconcile; it marks the lease row (`wanted_at`) and the leader starts a pass when it next
renews.

On SQLite (`exclusive=True`), `serve` holds the database's serve lock (`leases.lock_sqlite`),
so no other process can be alive: the lease is taken at once whoever held it last, and the
fence checks holder and epoch but not the expiry, which a long write could outlast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from controller.store import Connection, DatabaseError, Store, leases

log = structlog.get_logger("patchctl.leadership")

LEASE_TTL = timedelta(seconds=8)
RENEW_EVERY = timedelta(seconds=2)
_FOREVER = float("inf")


class Leadership:
    """Holds, renews and releases this replica's claim on the reconciler lease."""

    def __init__(
        self,
        store: Store,
        *,
        exclusive: bool = False,
        ttl: timedelta = LEASE_TTL,
        every: timedelta = RENEW_EVERY,
        holder: str | None = None,
    ) -> None:
        """`store` unfenced; `exclusive`: no other replica can exist (SQLite under its serve
        lock); `holder` defaults to `leases.replica_id()`."""
        if every >= ttl:
            raise ValueError(f"renewing every {every} cannot keep a lease of {ttl}")
        self.plain_store = store
        self.store = store.fenced(self.check)
        self.exclusive = exclusive
        self.ttl = ttl
        self.every = every
        self.holder = holder or leases.replica_id()
        self.on_elected: Callable[[], None] | None = None  # the service starts a pass
        self.on_wanted: Callable[[], None] | None = None
        self._epoch: int | None = None
        self._valid_until = 0.0  # time.monotonic() after which this replica no longer leads
        self._wanted_seen: datetime | None = None
        self._want = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- state ------------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this replica holds the lease, as far as it knows (the fence has the last
        word, inside each write)."""
        with self._lock:
            return self._epoch is not None and time.monotonic() < self._valid_until

    @property
    def epoch(self) -> int | None:
        with self._lock:
            return self._epoch

    def describe(self) -> dict[str, Any]:
        """This replica's role, for readiness and logs."""
        epoch = self.epoch
        return {"replica": self.holder, "leader": self.leading, "epoch": epoch}

    # --- the fence --------------------------------------------------------------------------

    def check(self, conn: Connection) -> None:
        """Raise `leases.LeaseLostError` unless this replica holds the lease (see the store)."""
        epoch = self.epoch
        if epoch is None:
            raise leases.LeaseLostError(f"{self.holder} does not hold the reconciler lease")
        now = None if self.exclusive else leases.database_now(conn)
        try:
            leases.check(conn, holder=self.holder, epoch=epoch, now=now)
        except leases.LeaseLostError:
            self._lose()
            raise

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="patchctl-lease", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop renewing and release the lease, so another replica takes over at once."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        epoch = self.epoch
        if epoch is None:
            return
        try:
            with self.plain_store.write() as conn:
                leases.release(conn, holder=self.holder, epoch=epoch, now=leases.database_now(conn))
        except DatabaseError as exc:
            log.warning("lease not released; it expires by itself", error=str(exc))
        self._lose(log_it=False)
        log.info("lease released", replica=self.holder, epoch=epoch)

    def ask_for_pass(self) -> None:
        """A follower's trigger: have the leader reconcile soon. The lease row is marked at the
        next renewal attempt, so a stream of reports costs one write per `every`."""
        self._want.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception:  # a bug must not end the attempts: the lease would just run out
                log.exception("lease attempt failed", replica=self.holder)
            self._wake.wait(self.every.total_seconds())
            self._wake.clear()

    def step(self) -> bool:
        """One attempt: renew the lease, or take it when it is free; pass on a follower's
        request. Returns whether this replica leads."""
        started = time.monotonic()
        epoch = self.epoch
        want = self._want.is_set()
        self._want.clear()
        try:
            with self.plain_store.write() as conn:
                now = leases.database_now(conn)
                lease = None
                if epoch is not None:
                    lease = leases.renew(
                        conn, holder=self.holder, epoch=epoch, ttl=self.ttl, now=now
                    )
                if lease is None:
                    lease = leases.acquire(
                        conn, holder=self.holder, ttl=self.ttl, now=now, force=self.exclusive
                    )
                if lease is None and want:
                    leases.want(conn, now=now)
        except DatabaseError as exc:  # the database is down: the lease runs out by itself
            log.warning("lease not renewed", replica=self.holder, error=str(exc))
            return self.leading
        if lease is None:
            if epoch is not None:
                self._lose()
            return False
        self._hold(lease, started=started)
        return True

    def _hold(self, lease: leases.Lease, *, started: float) -> None:
        # The lease runs from the database's "now", which comes after `started`: counting from
        # `started` makes this replica stop leading a little before the database says so.
        with self._lock:
            elected = self._epoch != lease.epoch
            self._epoch = lease.epoch
            self._valid_until = _FOREVER if self.exclusive else started + self.ttl.total_seconds()
            wanted = (
                lease.wanted_at is not None
                and self._wanted_seen is not None
                and lease.wanted_at > self._wanted_seen
            )
            self._wanted_seen = lease.wanted_at or self._wanted_seen or lease.acquired_at
        if elected:
            log.info("leading", replica=self.holder, epoch=lease.epoch)
            if self.on_elected is not None:
                self.on_elected()
        elif wanted and self.on_wanted is not None:
            self.on_wanted()

    def _lose(self, *, log_it: bool = True) -> None:
        with self._lock:
            epoch, self._epoch = self._epoch, None
            self._valid_until = 0.0
        if epoch is not None and log_it:
            log.warning("lease lost: no longer leading", replica=self.holder, epoch=epoch)
