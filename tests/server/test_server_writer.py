"""The writer: batching concurrent reports, and handing a batch to a thread when locked."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, database, tokens

pytestmark = pytest.mark.anyio


async def enrolled(client: httpx.AsyncClient, store, clock, count: int) -> list[tuple[str, dict]]:
    with store.write() as conn:
        secret = tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme", now=clock()
        ).secret
    found = []
    for index in range(count):
        answer = await client.post(
            "/api/v1/enroll",
            json={
                "enrollmentToken": secret,
                "hostname": f"host-{index}",
                "os": {"family": "windows", "name": "Windows 11 Enterprise", "version": "10.0"},
                "agentVersion": "1",
                "role": "workstation",
            },
        )
        body = answer.json()
        found.append((body["deviceId"], {"Authorization": f"Bearer {body['deviceToken']}"}))
    return found


def scan_body(clock) -> dict:
    return {
        "scan": {
            "scannedAt": clock().isoformat(),
            "rebootRequired": False,
            "missing": [{"id": "KB1"}],
        }
    }


async def test_concurrent_reports_share_transactions(sqlite_store, clock) -> None:
    """Reports that arrive together are written in fewer transactions than reports."""
    app = create_app(sqlite_store, Settings(clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            devices = await enrolled(client, sqlite_store, clock, 20)
            writer = app.state.services.writer
            before = writer.batches
            answers = await asyncio.gather(
                *(
                    client.post(f"/api/v1/devices/{d}/report", headers=auth, json=scan_body(clock))
                    for d, auth in devices
                )
            )
            batches = writer.batches - before
    assert [200] * 20 == [a.status_code for a in answers]
    assert batches < 20


@contextlib.contextmanager
def _other_process_write(store: Store) -> Iterator[None]:
    """A write transaction that does not take this process's write gate, as another process's
    would: only SQLite's own lock (and busy timeout) stands in the writer's way."""
    with store.engine.connect() as conn:
        conn.execution_options(patchctl_write=True)
        with conn.begin():
            yield


@pytest.mark.parametrize(
    "transaction",
    [Store.write, _other_process_write],
    ids=["this-process-write-gate", "another-process-sqlite-lock"],
)
async def test_a_locked_database_hands_the_batch_to_a_thread(
    sqlite_store, clock, transaction
) -> None:
    """While another write transaction holds the lock (one of this process, on the write gate;
    one of another process, on SQLite's lock), a report waits in a worker thread and succeeds
    once the lock is released; the event loop keeps answering meanwhile."""
    app = create_app(sqlite_store, Settings(clock=clock))
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with transaction(sqlite_store):
            locked.set()
            release.wait(timeout=10)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            [(device, auth)] = await enrolled(client, sqlite_store, clock, 1)
            holder = threading.Thread(target=hold_lock)
            holder.start()
            locked.wait(timeout=10)
            report = asyncio.create_task(
                client.post(f"/api/v1/devices/{device}/report", headers=auth, json=scan_body(clock))
            )
            await asyncio.sleep(0.2)
            started = time.monotonic()
            health = await client.get("/healthz")
            responsive = time.monotonic() - started
            waiting = not report.done()  # the lock is still held: the report cannot be done
            release.set()
            answer = await report
            holder.join()
    assert (200, 200) == (health.status_code, answer.status_code)
    assert waiting
    # A writer waiting on the event loop would hold /healthz for its whole lock wait (SQLite's
    # busy timeout, 15 s: the lock is released only after /healthz answers); the bound is far
    # below that and far above a full garbage collection of a long test session's heap (CI
    # once took 1.2 s here with the hand-off working).
    assert responsive < database.BUSY_TIMEOUT_MS / 1000 / 3
    assert 1 <= app.state.services.writer.handed_off
