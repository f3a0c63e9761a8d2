"""The reconciler lease in the store: taking, renewing, releasing and fencing it on both engines
(times given by the test), PostgreSQL's row locks between the fence and a takeover, and the
one-serve lock of SQLite."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from controller.store import Store, leases, open_store
from controller.store import status as status_store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def acquire(
    store: Store, holder: str, seconds: float, *, force: bool = False
) -> tuple[str, int] | None:
    with store.write() as conn:
        lease = leases.acquire(conn, holder=holder, ttl=TTL, now=at(seconds), force=force)
    return (lease.holder, lease.epoch) if lease is not None else None


# Each step: (holder, seconds after T0, force) -> who holds the lease afterwards under which
# epoch, or None when the attempt was refused.
@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([("a", 0, False)], [("a", 1)], id="first-taker-gets-epoch-1"),
        pytest.param(
            [("a", 0, False), ("b", 5, False)], [("a", 1), None], id="rival-refused-while-valid"
        ),
        pytest.param(
            [("a", 0, False), ("b", 10, False)], [("a", 1), ("b", 2)], id="rival-takes-at-expiry"
        ),
        pytest.param(
            [("a", 0, False), ("a", 8, False), ("b", 12, False), ("b", 18.5, False)],
            [("a", 1), ("a", 1), None, ("b", 2)],
            id="holder-renews-under-same-epoch",
        ),
        pytest.param(
            [("a", 0, False), ("b", 20, False), ("a", 21, False)],
            [("a", 1), ("b", 2), None],
            id="old-holder-cannot-come-back",
        ),
        pytest.param(
            [("a", 0, False), ("b", 1, True)], [("a", 1), ("b", 2)], id="force-takes-a-valid-lease"
        ),
    ],
)
def test_acquire(
    store: Store, steps: list[tuple[str, float, bool]], expected: list[object]
) -> None:
    """The lease goes to the first taker, stays with its holder while renewed, and passes to a
    rival only once expired (or by force), one epoch later."""
    actual = [acquire(store, holder, seconds, force=force) for holder, seconds, force in steps]
    assert expected == actual


def test_renew_needs_holder_and_epoch(store: Store) -> None:
    """A renewal extends the lease of its holder and epoch, and nothing once it changed hands."""
    acquire(store, "a", 0)
    with store.write() as conn:
        renewed = leases.renew(conn, holder="a", epoch=1, ttl=TTL, now=at(9))
        wrong_epoch = leases.renew(conn, holder="a", epoch=7, ttl=TTL, now=at(9))
    acquire(store, "b", 30)
    with store.write() as conn:
        after_takeover = leases.renew(conn, holder="a", epoch=1, ttl=TTL, now=at(31))
    assert renewed is not None
    assert (at(19), None, None) == (renewed.expires_at, wrong_epoch, after_takeover)


@pytest.mark.parametrize(
    ("holder", "epoch", "seconds", "lost"),
    [
        pytest.param("a", 1, 5, False, id="holder-within-ttl"),
        pytest.param("a", 1, 10, True, id="holder-at-expiry"),
        pytest.param("a", 2, 5, True, id="other-epoch"),
        pytest.param("b", 1, 5, True, id="other-holder"),
        pytest.param("a", 1, None, False, id="expiry-not-checked"),
    ],
)
def test_check(store: Store, holder: str, epoch: int, seconds: float | None, lost: bool) -> None:
    """The fence passes only for the holder, under its epoch, before the expiry."""
    acquire(store, "a", 0)
    now = None if seconds is None else at(seconds)
    try:
        with store.write() as conn:
            leases.check(conn, holder=holder, epoch=epoch, now=now)
    except leases.LeaseLostError:
        refused = True
    else:
        refused = False
    assert lost == refused


def test_a_fenced_store_writes_nothing_after_a_takeover(store: Store) -> None:
    """A write through the old holder's fenced store raises LeaseLostError naming the new
    holder, and stores nothing."""
    acquire(store, "a", 0)
    fenced = store.fenced(partial(leases.check, holder="a", epoch=1, now=at(12)))
    acquire(store, "b", 11)
    with pytest.raises(leases.LeaseLostError) as raised, fenced.write() as conn:
        status_store.set_status(conn, "written-by-a", {"x": 1}, now=at(12))
    with store.read() as conn:
        status = status_store.get_status(conn)
    assert "held by b (epoch 2)" in str(raised.value)
    assert "written-by-a" not in status


def test_release_hands_over_at_once(store: Store) -> None:
    """A released lease is taken by a rival at once, under the next epoch."""
    acquire(store, "a", 0)
    with store.write() as conn:
        released = leases.release(conn, holder="a", epoch=1, now=at(1))
        released_twice = leases.release(conn, holder="a", epoch=2, now=at(1))
    assert (True, False, ("b", 2)) == (released, released_twice, acquire(store, "b", 1))


def test_want_marks_the_lease_for_the_leader(store: Store) -> None:
    """A follower's request is kept on the lease row, where the leader reads it."""
    acquire(store, "a", 0)
    with store.write() as conn:
        leases.want(conn, now=at(3))
    with store.read() as conn:
        lease = leases.read(conn)
    assert lease is not None
    assert at(3) == lease.wanted_at


def test_the_fence_blocks_a_takeover_but_not_a_renewal(postgres_url: str) -> None:
    """On PostgreSQL, while a leader's write transaction that passed the fence is open, its own
    renewal goes through but a takeover waits, and then gets the next epoch."""
    store = open_store(postgres_url)
    try:
        with store.write() as conn:
            now = leases.database_now(conn)
            leases.acquire(conn, holder="a", ttl=TTL, now=now)
        results: dict[str, object] = {}

        def attempt(name: str, action: object) -> threading.Thread:
            def run() -> None:
                with store.write() as conn:
                    results[name] = action(conn)  # type: ignore[operator]

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread

        with store.write() as leader:
            leases.check(leader, holder="a", epoch=1, now=leases.database_now(leader))
            renewal = attempt(
                "renewal", lambda c: leases.renew(c, holder="a", epoch=1, ttl=TTL, now=now)
            )
            renewal.join(5)
            renewed_meanwhile = not renewal.is_alive()
            takeover = attempt(
                "takeover",
                lambda c: leases.acquire(c, holder="b", ttl=TTL, now=now, force=True),
            )
            takeover.join(1.0)
            waiting = takeover.is_alive()
        takeover.join(10)
    finally:
        store.close()
    taken = results["takeover"]
    assert (True, True) == (renewed_meanwhile, waiting)
    assert results["renewal"] is not None
    assert isinstance(taken, leases.Lease)
    assert ("b", 2) == (taken.holder, taken.epoch)


def test_sqlite_allows_one_serve_lock(tmp_path: Path) -> None:
    """A second serve lock on one SQLite database is refused naming the holder; after the
    first is released it is granted."""
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        first = leases.lock_sqlite(store, now=T0)
        with pytest.raises(leases.ReplicaConflictError) as raised:
            leases.lock_sqlite(store, now=T0)
        assert first is not None
        first.release()
        again = leases.lock_sqlite(store, now=T0)
        assert again is not None
        again.release()
    finally:
        store.close()
    message = str(raised.value)
    assert f"pid {os.getpid()}" in message
    assert "SQLite supports one `patchctl serve` at a time" in message


def test_postgresql_needs_no_serve_lock(postgres_url: str) -> None:
    """On PostgreSQL replicas share the database: there is no serve lock to take."""
    store = open_store(postgres_url)
    try:
        assert leases.lock_sqlite(store, now=T0) is None
    finally:
        store.close()
