"""Every write of the HTTP service goes through one writer, which batches them (group commit).

Why: SQLite has one writer at a time, so the service's writes are funnelled into one queue.
While a batch commits, new requests queue up and are written together with a few bulk
statements; PostgreSQL gets the same batching, which saves round trips.

Where it runs: on the event loop's own thread, on a dedicated connection that waits at most
`LOCK_WAIT_MS` for a lock. A writer thread would fight the event loop for the GIL at every
database call (each releases and re-takes it), which cost more than the writes themselves.
When the database is locked by someone else (another process, a long reconcile transaction),
the batch is handed to a worker thread that waits as long as the store's busy timeout allows,
so the event loop never stalls on a lock.

Guarantees: each report, and each submitted call, runs exactly once in a committed transaction
or fails alone. A call runs inside a SAVEPOINT, so its exception is its own; if a whole batch
fails, it is rolled back and every item is retried in its own transaction.

The reconcile loop is told (`on_change`) only after a batch that changed something the planner
reads: a report whose outcome lists changes (`controller.store.reports.Outcome.changes`), a call
whose `replans` says so of its result (every call, when it gives none). A heartbeat, a repeated
scan or a failed item costs no planning.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from controller import errors
from controller.store import database, reports

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from controller.store import Connection, Store

T = TypeVar("T")
log = structlog.get_logger("patchctl.writer")

MAX_BATCH = 256
LOCK_WAIT_MS = 50


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[Any]
    report: reports.Report | None = None
    call: Callable[[Connection, datetime], Any] | None = None
    replans: Callable[[Any], bool] | None = None  # of a call's result; None: always


class WriterClosedError(errors.TransientError, RuntimeError):
    """The writer was stopped; the service is shutting down."""


class Writer:
    """Serialises and batches the service's writes; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """`on_change`: called after each batch that changed a planner input (the reconcile
        loop's trigger), on the event loop's thread."""
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._queue: collections.deque[_Item] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._stopping = False
        self.batches = 0
        self.items = 0
        self.handed_off = 0  # batches written by a worker thread because of a lock
        self.changing = 0  # batches after which `on_change` was told

    def start(self) -> None:
        """Start writing (call from the running event loop)."""
        if self._task is None:
            self._stopping = False
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="patchctl-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        task, self._task = self._task, None  # from now on, submissions are refused
        if task is not None:
            self._stopping = True
            self._signal()
            await task
        # Not back to the pool: the connection carries the writer's short lock timeout.
        self._discard_connection()

    async def report(self, report: reports.Report) -> reports.Outcome:
        """Store one agent report (batched with concurrent ones)."""
        result: reports.Outcome = await self._submit(_Item(self._future(), report=report))
        return result

    async def call(
        self,
        function: Callable[[Connection, datetime], T],
        *,
        replans: Callable[[T], bool] | None = None,
    ) -> T:
        """Run `function(conn, now)` in a write transaction; it must not block. `replans(result)`
        says whether it changed a planner input (None: assume it did)."""
        result: T = await self._submit(_Item(self._future(), call=function, replans=replans))
        return result

    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, item: _Item) -> Any:
        if self._task is None:
            raise WriterClosedError("the service is shutting down")
        self._queue.append(item)
        self._signal()
        return await item.future

    def _signal(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- the writing task ------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None  # noqa: S101 - set by start()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                await self._write(batch)
                # Let the loop read the requests that arrived meanwhile: they form the next batch.
                await asyncio.sleep(0)
            if self._stopping:
                return

    async def _write(self, batch: list[_Item]) -> None:
        self.batches += 1
        self.items += len(batch)
        results = await self._write_batch(batch)
        written = zip(batch, results, strict=True)
        if any(_replans(item, ok=ok, value=value) for item, (ok, value) in written):
            self.changing += 1
            if self._on_change is not None:
                self._on_change()

    async def _write_batch(self, batch: list[_Item]) -> list[tuple[bool, Any]]:
        """Write and settle the batch; each item's (ok, result or exception)."""
        try:
            results = self._write_together(self._connection(), batch, wait_ms=LOCK_WAIT_MS)
        except Exception as exc:  # noqa: BLE001 - whatever it was, each item gets its own answer
            if not isinstance(exc, database.WriteLockTimeoutError):  # else it never began
                self._discard_connection()
            if database.is_lock_timeout(exc):
                self.handed_off += 1
                return await asyncio.to_thread(self._write_waiting, batch)
            log.warning("write batch failed; retrying one by one", size=len(batch), error=str(exc))
            return await asyncio.to_thread(self._write_each, batch)
        for item, (ok, value) in zip(batch, results, strict=True):
            _settle(item, ok=ok, value=value)
        return results

    def _write_together(
        self, conn: Connection, batch: list[_Item], *, wait_ms: int
    ) -> list[tuple[bool, Any]]:
        """The batch in one transaction on `conn`, begun once this process's other writers are
        done (waiting at most `wait_ms` for them: `Store.write_turn`)."""
        results: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        with self._store.write_turn(wait_ms=wait_ms), conn.begin():
            now = self._clock()
            for index, item in enumerate(batch):
                if item.call is not None:
                    try:
                        with conn.begin_nested():
                            results[index] = (True, item.call(conn, now))
                    except Exception as exc:
                        if database.is_lock_timeout(exc):
                            raise
                        results[index] = (False, exc)
            indexed = [(i, item.report) for i, item in enumerate(batch) if item.report is not None]
            if indexed:
                outcomes = reports.write_reports(conn, [r for _, r in indexed], now=now)
                for (index, _), outcome in zip(indexed, outcomes, strict=True):
                    results[index] = (True, outcome)
        return results

    # --- worker-thread paths (a lock held elsewhere, or a failed batch) ---------------------

    def _write_waiting(self, batch: list[_Item]) -> list[tuple[bool, Any]]:
        """The whole batch in one transaction that waits for the lock (worker thread)."""
        try:
            with self._store.engine.connect() as conn:
                conn.execution_options(patchctl_write=True)
                results = self._write_together(conn, batch, wait_ms=database.BUSY_TIMEOUT_MS)
        except Exception:  # noqa: BLE001 - fall back to one transaction per item
            return self._write_each(batch)
        for item, (ok, value) in zip(batch, results, strict=True):
            _settle_threadsafe(item, ok=ok, value=value)
        return results

    def _write_each(self, batch: list[_Item]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        for item in batch:
            now = self._clock()
            try:
                with self._store.write() as conn:
                    if item.call is not None:
                        value = item.call(conn, now)
                    else:
                        assert item.report is not None  # noqa: S101 - a call or a report
                        value = reports.write_reports(conn, [item.report], now=now)[0]
            except Exception as exc:  # noqa: BLE001 - delivered to the caller
                results.append((False, exc))
                _settle_threadsafe(item, ok=False, value=exc)
            else:
                results.append((True, value))
                _settle_threadsafe(item, ok=True, value=value)
        return results

    # --- the dedicated connection ----------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._store.write_connection(lock_wait_ms=LOCK_WAIT_MS)
        return self._conn

    def _discard_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None


def _replans(item: _Item, *, ok: bool, value: Any) -> bool:
    """Whether a written item changed a planner input (a failed one changed nothing)."""
    if not ok:
        return False
    if item.report is not None:
        return bool(value.replans)
    return item.replans is None or item.replans(value)


def _settle(item: _Item, *, ok: bool, value: Any) -> None:
    if item.future.done():  # the request went away (client disconnected)
        return
    if ok:
        item.future.set_result(value)
    else:
        item.future.set_exception(value)


def _settle_threadsafe(item: _Item, *, ok: bool, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting any more
        item.future.get_loop().call_soon_threadsafe(
            functools.partial(_settle, item, ok=ok, value=value)
        )
