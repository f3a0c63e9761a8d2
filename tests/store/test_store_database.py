"""`store.database`: this process's SQLite writers queue on the write gate, not in SQLite's
busy handler; a writer that cannot get its turn in time fails as a lock timeout."""

from __future__ import annotations

import threading

import pytest

from controller.store import Store, database


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
