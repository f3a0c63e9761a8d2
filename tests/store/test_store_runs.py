"""`store.runs`: reconcile attempts as recorded, listed newest first, and the figures status
and metrics read from them (durations by result, when the current revision was first applied)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.store import Store
from controller.store import runs as run_store

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def record(store: Store, minute: int, revision: str | None, result: str, ms: int | None) -> None:
    started = T0 + timedelta(minutes=minute)
    finished = None if ms is None else started + timedelta(milliseconds=ms)
    with store.write() as conn:
        run_store.record_reconcile_run(
            conn,
            started_at=started,
            finished_at=finished,
            revision=revision,
            result=result,
            counts={"issued": minute},
        )


def test_runs_are_listed_newest_first_with_their_duration(store: Store) -> None:
    """The duration is finished - started in ms; a run without an end has none."""
    record(store, 0, "main@sha1:a", "applied", 1500)
    record(store, 1, None, "source-error", None)
    record(store, 2, "main@sha1:b", "applied", 250)
    with store.read() as conn:
        listed = run_store.list_reconcile_runs(conn, limit=2)
    assert [("main@sha1:b", 250, {"issued": 2}), (None, None, {"issued": 1})] == [
        (r["revision"], r["duration_ms"], r["counts"]) for r in listed
    ]


def test_durations_are_bucketed_per_result_like_prometheus_le(store: Store) -> None:
    """Cumulative buckets per result, in result order; runs without a duration are left out."""
    for minute, (result, ms) in enumerate(
        [("applied", 100), ("applied", 900), ("applied", 4000), ("policy-invalid", 50)]
    ):
        record(store, minute, "main@sha1:a", result, ms)
    record(store, 9, None, "source-error", None)
    with store.read() as conn:
        found = run_store.duration_histogram(conn, [0.5, 1.0, 5.0])
    assert [
        run_store.DurationBuckets("applied", 3, 5000, (1, 2, 3)),
        run_store.DurationBuckets("policy-invalid", 1, 50, (1, 1, 1)),
    ] == found


def test_applied_since_is_the_first_application_of_the_current_revision(store: Store) -> None:
    """a, then b twice, then a failed pass: b has been applied since its first run finished;
    the last applied run is b's second."""
    record(store, 0, "main@sha1:a", "applied", 1000)
    record(store, 5, "main@sha1:b", "applied", 1000)
    record(store, 6, "main@sha1:b", "applied", 1000)
    record(store, 7, "main@sha1:c", "policy-invalid", 1000)
    with store.read() as conn:
        assert T0 + timedelta(minutes=5, seconds=1) == run_store.applied_since(conn)
        assert T0 + timedelta(minutes=6, seconds=1) == run_store.last_applied_at(conn)
        assert ["main@sha1:a", "main@sha1:b", "main@sha1:c"] == run_store.revisions(conn)


def test_a_store_without_runs_has_no_answers(store: Store) -> None:
    with store.read() as conn:
        assert (None, None, [], []) == (
            run_store.applied_since(conn),
            run_store.last_applied_at(conn),
            run_store.revisions(conn),
            run_store.duration_histogram(conn, [1.0]),
        )
