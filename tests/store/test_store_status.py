"""`store.status`: the key/value status table read by key, by keys, by prefix, and locked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.store import DatabaseError, Store, database
from controller.store import status as status_store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_values_read_by_key_keys_and_prefix(store: Store) -> None:
    """Each reader returns what `set_status` stored, and nothing for a key never set."""
    with store.write() as conn:
        for key, value in {"notify:b": {"n": 2}, "notify:a": {"n": 1}, "plan": [1]}.items():
            status_store.set_status(conn, key, value, now=NOW)
        status_store.set_status(conn, "plan", [2], now=NOW + timedelta(seconds=1))
    with store.read() as conn:
        assert [2] == status_store.get_value(conn, "plan")
        assert None is status_store.get_value(conn, "absent")
        assert {"plan": [2]} == status_store.get_values(conn, {"plan", "absent"})
        assert {} == status_store.get_values(conn, set())
        prefixed = status_store.values_with_prefix(conn, "notify:")
        assert [("notify:a", {"n": 1}), ("notify:b", {"n": 2})] == list(prefixed.items())


def test_lock_value_stores_an_empty_value_once(store: Store) -> None:
    """A key without a value gets `{}`; a key with one keeps it."""
    with store.write() as conn:
        assert {} == status_store.lock_value(conn, "audit:main", now=NOW)
        status_store.set_status(conn, "audit:main", {"tip": "abc"}, now=NOW)
    with store.write() as conn:
        assert {"tip": "abc"} == status_store.lock_value(conn, "audit:main", now=NOW)


def test_a_writer_connection_gives_up_on_a_held_lock(store: Store) -> None:
    """The batching writer's connection waits `lock_wait_ms` for a held lock, then fails with an
    error `is_lock_timeout` recognises (SQLite busy, PostgreSQL lock_not_available)."""
    with store.write() as conn:
        status_store.set_status(conn, "held", {}, now=NOW)
    writer = store.write_connection(lock_wait_ms=50)
    try:
        with store.write() as holder:
            status_store.lock_value(holder, "held", now=NOW)
            with pytest.raises(DatabaseError) as caught, writer.begin():
                status_store.lock_value(writer, "held", now=NOW)
        assert database.is_lock_timeout(caught.value)
    finally:
        writer.invalidate()
        writer.close()
    assert not database.is_lock_timeout(ValueError("not a database error"))


def test_a_value_stored_as_json_text_reads_back_as_the_value(store: Store) -> None:
    """`set_encoded` stores JSON texts as the values they encode (not as strings), several
    in one statement;
    `updated_times` answers when each key was set, leaving out a key never set."""
    with store.write() as conn:
        status_store.set_status(conn, "plan", {"old": True}, now=NOW)
        status_store.set_encoded(
            conn,
            {"plan": '{"pending":{"d1":["P1"]},"n":2}', "shard": '["a",1]'},
            now=NOW + timedelta(seconds=1),
        )
        status_store.set_encoded(conn, {}, now=NOW + timedelta(seconds=2))  # nothing to set
    with store.read() as conn:
        assert {"pending": {"d1": ["P1"]}, "n": 2} == status_store.get_value(conn, "plan")
        assert ["a", 1] == status_store.get_value(conn, "shard")
        found = status_store.updated_times(conn, {"plan", "shard", "absent"})
        assert {"plan": NOW + timedelta(seconds=1), "shard": NOW + timedelta(seconds=1)} == found
