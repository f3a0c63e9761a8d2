"""`store.database`: this process's SQLite writers queue on the write gate, not in SQLite's
busy handler; a writer that cannot get its turn in time fails as a lock timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from controller.store import Store, database, devices, schema

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def enrol(store: Store, *, now: datetime) -> str:
    """A device for rows to point at (the jobs table's foreign key)."""
    with store.write() as conn:
        return devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme",
                hostname="web-01",
                os_family="linux",
                os_name="Debian",
                os_version="12",
                role="server",
                agent_version="1",
            ),
            poll_interval=60,
            now=now,
        ).device_id


def test_a_turn_not_given_in_time_is_a_lock_timeout(sqlite_store: Store) -> None:
    """`write_turn` gives up after `wait_ms` while another write holds the gate, with an error
    `is_lock_timeout` recognises (the HTTP writer then hands its batch to a worker thread)."""
    assert sqlite_store.gate is not None
    failed: list[BaseException] = []
    with sqlite_store.write():

        def try_turn() -> None:
            try:
                with sqlite_store.write_turn(wait_ms=20):
                    pass
            except database.WriteLockTimeoutError as exc:
                failed.append(exc)

        other = threading.Thread(target=try_turn)
        other.start()
        other.join(10)
    assert 1 == len(failed)
    assert database.is_lock_timeout(failed[0])
    with sqlite_store.write_turn(wait_ms=20):  # free again once the transaction ended
        pass


def test_the_gate_is_released_when_a_write_fails(sqlite_store: Store) -> None:
    """A write transaction that raises rolls back and gives the gate back."""
    with pytest.raises(RuntimeError), sqlite_store.write():
        raise RuntimeError("boom")
    with sqlite_store.write_turn(wait_ms=20):
        pass


def test_a_fenced_store_shares_the_gate(sqlite_store: Store) -> None:
    """`fenced` keeps the store's gate: the leader's fenced writes queue with the others."""
    assert sqlite_store.fenced(lambda _conn: None).gate is sqlite_store.gate


def test_insert_many_stores_what_a_core_insert_stores(store: Store) -> None:
    """Every kind of column (text, JSON, aware date-times in any zone, NULLs, integers) reads
    back equal from rows written by `insert_many` and by `conn.execute(table.insert(), rows)`;
    with `skip_existing`, a row whose key exists is left as it was."""
    zone = timezone(timedelta(hours=5, minutes=30))
    now = datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)
    device = enrol(store, now=now)

    def row(key: str, n: int) -> dict[str, object]:
        return {
            "id": key,
            "device_id": device,
            "tenant": "acme",
            "kind": "install",
            "patch_ids": [f"DSA-{n}", "ü"],
            "payload": {"n": n, "list": [1, None], "nested": {"a": [True, 0.5]}},
            "state": "pending",
            "revision": "main@sha1:abc",
            "window_key": None if n % 2 else f"w@{n}",
            "deadline": now.astimezone(zone) + timedelta(seconds=n) if n % 2 else None,
            "created_at": now,
            "updated_at": now.astimezone(zone),
            "results": {},
            "run_timeout": n * 60 if n % 2 else None,
        }

    fast = [row(f"fast:{n}", n) for n in range(5)]
    core = [row(f"core:{n}", n) for n in range(5)]
    columns = [c for c in schema.jobs.c if c.name != "id"]
    with store.write() as conn:
        database.insert_many(conn, schema.jobs, fast, skip_existing=False)
        conn.execute(schema.jobs.insert(), core)
        again = {**fast[0], "state": "failed", "payload": {}}
        database.insert_many(conn, schema.jobs, [again], skip_existing=True)
        stored = {r.id: r for r in conn.execute(sa.select(schema.jobs))}
    for n in range(5):
        one, other = stored[f"fast:{n}"], stored[f"core:{n}"]
        assert [one._mapping[c] for c in columns] == [other._mapping[c] for c in columns]
        assert (one.deadline, one.patch_ids) == (fast[n]["deadline"], fast[n]["patch_ids"])
    assert ("pending", fast[0]["payload"]) == (stored["fast:0"].state, stored["fast:0"].payload)


class _FreshRows(Sequence[dict[str, object]]):
    """Rows made anew each time one is read: nothing but the insert holds their values."""

    def __init__(self, make: Callable[[int], dict[str, object]], size: int) -> None:
        self.make, self.size = make, size

    def __getitem__(self, index: int) -> dict[str, object]:  # type: ignore[override]
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.make(index)

    def __len__(self) -> int:
        return self.size


def test_insert_many_encodes_a_shared_json_value_once_and_each_other_as_its_own(
    store: Store,
) -> None:
    """Rows sharing one list or dict object store it as it is; rows with their own objects
    (equal or not) store their own, also when the objects live only while their row is read,
    so that a freed object's id may come back for another value."""
    device = enrol(store, now=NOW)
    shared_patches = ["DSA-1", "DSA-2"]
    shared_payload: dict[str, object] = {"reason": "shared", "n": [1]}

    def row(key: str, patches: list[str], payload: dict[str, object]) -> dict[str, object]:
        return {
            "id": key,
            "device_id": device,
            "tenant": "acme",
            "kind": "install",
            "patch_ids": patches,
            "payload": payload,
            "state": "pending",
            "revision": "main@sha1:abc",
            "created_at": NOW,
            "updated_at": NOW,
            "results": {},
        }

    shared = [row(f"shared:{n}", shared_patches, shared_payload) for n in range(3)]
    own = [row(f"own:{n}", [f"DSA-{n}"], {"reason": "own", "n": [n]}) for n in range(3)]
    fresh = _FreshRows(lambda n: row(f"fresh:{n}", [f"USN-{n}"], {"n": n, "pad": [n] * n}), 50)
    with store.write() as conn:
        database.insert_many(conn, schema.jobs, [*shared, *own], skip_existing=False)
        database.insert_many(conn, schema.jobs, fresh, skip_existing=False)
        stored = {r.id: (r.patch_ids, r.payload) for r in conn.execute(sa.select(schema.jobs))}
    expected = {
        r["id"]: (r["patch_ids"], r["payload"])
        for r in [*shared, *own, *(fresh[n] for n in range(len(fresh)))]
    }
    assert expected == stored
