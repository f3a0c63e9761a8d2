"""Jobs: the pure state machine, idempotent issuing, at-least-once delivery, agent events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from controller.core.jobs import job_id
from controller.runtime.status import patch_status
from controller.store import Store, jobs, schema
from controller.store.job_states import (
    STARTED_STATES,
    EventVerdict,
    JobKind,
    JobState,
    dedupe_key,
    evaluate_event,
)
from controller.testing.stores import enrol_linux

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
S = JobState


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (S.PENDING, S.ACKED, EventVerdict.ADVANCE),
        (S.DELIVERED, S.ACKED, EventVerdict.ADVANCE),
        (S.DELIVERED, S.SUCCEEDED, EventVerdict.ADVANCE),
        (S.ACKED, S.DOWNLOADING, EventVerdict.ADVANCE),
        (S.DOWNLOADING, S.DOWNLOADING, EventVerdict.PROGRESS),
        (S.INSTALLING, S.REBOOTING, EventVerdict.ADVANCE),
        (S.REBOOTING, S.FAILED, EventVerdict.ADVANCE),
        (S.INSTALLING, S.ACKED, EventVerdict.ILLEGAL),
        (S.SUCCEEDED, S.FAILED, EventVerdict.ILLEGAL),
        (S.SUCCEEDED, S.SUCCEEDED, EventVerdict.ILLEGAL),
        (S.EXPIRED, S.ACKED, EventVerdict.ILLEGAL),
        (S.ACKED, S.CANCELLED, EventVerdict.ILLEGAL),
        (S.ACKED, S.PENDING, EventVerdict.ILLEGAL),
    ],
    ids=lambda v: v.value if hasattr(v, "value") else str(v),
)
def test_event_verdicts(current: JobState, reported: JobState, expected: EventVerdict) -> None:
    """Agents move jobs forwards only, may skip states, and never touch finished jobs."""
    assert expected == evaluate_event(current, reported)[0]


def test_dedupe_key_prefers_seq_and_hashes_content() -> None:
    """The dedupe key is the seq when given, else a hash that ignores key order."""
    assert "seq:7" == dedupe_key(7, {"a": 1})
    assert dedupe_key(None, {"a": 1, "b": 2}) == dedupe_key(None, {"b": 2, "a": 1})
    assert dedupe_key(None, {"a": 1}) != dedupe_key(None, {"a": 2})


def test_job_ids_are_deterministic() -> None:
    """The one job-id rule (`core.jobs.job_id`): the same device, kind, patch set and occurrence
    give the same id, in any patch order."""
    one = job_id("d", JobKind.INSTALL, ("B", "A"), "w1")
    two = job_id("d", JobKind.INSTALL, ("A", "B"), "w1")
    other = job_id("d", JobKind.INSTALL, ("A",), "w1")
    assert one == two
    assert one != other


def enrolled(store: Store) -> str:
    with store.write() as conn:
        return enrol_linux(conn, "web-01", now=NOW)


def install(device_id: str, job_id: str = "install-1", **extra: object) -> jobs.NewJob:
    return jobs.NewJob(
        id=job_id,
        device_id=device_id,
        tenant="acme/retail",
        kind=JobKind.INSTALL,
        revision="main@sha1:abc",
        patch_ids=("USN-7123-1",),
        payload={"reboot": "never"},
        **extra,  # type: ignore[arg-type]
    )


def test_issuing_twice_issues_once(store: Store) -> None:
    """Inserting a job whose id exists already changes nothing."""
    device = enrolled(store)
    with store.write() as conn:
        first = jobs.insert_jobs(conn, [install(device)], now=NOW)
        again = jobs.insert_jobs(conn, [install(device)], now=NOW + timedelta(1))
        rows = jobs.list_jobs(conn, scope="acme")
    assert (1, 0, 1) == (first, again, len(rows))


def test_delivery_repeats_until_acknowledged(store: Store) -> None:
    """A job is delivered on every poll until the agent acks it; expired ones are not."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(
            conn,
            [install(device), install(device, "late", deadline=NOW - timedelta(minutes=1))],
            now=NOW - timedelta(hours=1),
        )
    for _ in range(2):
        with store.write() as conn:
            found = jobs.deliverable_jobs(conn, device, now=NOW)
            jobs.mark_delivered(conn, [j["id"] for j in found], now=NOW)
    with store.write() as conn:
        job = jobs.get_job(conn, "install-1")
        jobs.record_event(
            conn, device_id=device, job_id="install-1", event=jobs.JobEvent(state=S.ACKED), now=NOW
        )
        after_ack = jobs.deliverable_jobs(conn, device, now=NOW)
    assert job is not None
    assert ["install-1"] == [j["id"] for j in found]
    assert ("delivered", 2) == (job["state"], job["deliveries"])
    assert [] == after_ack


def test_events_apply_replay_and_refuse(store: Store) -> None:
    """Events advance the job, a replay is a duplicate, a backwards move is illegal."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device)], now=NOW)
    done = jobs.JobEvent(
        state=S.FAILED,
        seq=3,
        patches=({"id": "USN-7123-1", "result": "failed", "reason": "dpkg error"},),
        reboot_required=False,
        output="dpkg: error",
    )
    sequence = [
        jobs.JobEvent(state=S.ACKED, seq=1),
        jobs.JobEvent(state=S.INSTALLING, seq=2),
        jobs.JobEvent(state=S.INSTALLING, seq=2),
        jobs.JobEvent(state=S.ACKED, seq=9),
        done,
        done,
        jobs.JobEvent(state=S.SUCCEEDED, seq=4),
    ]
    statuses = []
    for event in sequence:
        with store.write() as conn:
            statuses.append(
                jobs.record_event(
                    conn, device_id=device, job_id="install-1", event=event, now=NOW
                ).status
            )
    with store.read() as conn:
        job = jobs.get_job(conn, "install-1")
        events = jobs.job_events(conn, "install-1")
    e = jobs.EventStatus
    assert [
        e.APPLIED,
        e.APPLIED,
        e.DUPLICATE,
        e.ILLEGAL,
        e.APPLIED,
        e.DUPLICATE,
        e.ILLEGAL,
    ] == statuses
    assert job is not None
    assert ("failed", {"USN-7123-1": {"result": "failed", "reason": "dpkg error"}}) == (
        job["state"],
        job["results"],
    )
    assert ["acked", "installing", "failed"] == [e["state"] for e in events]


def test_another_devices_job_is_not_found(store: Store) -> None:
    """A device cannot report on a job that is not its own."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device)], now=NOW)
        result = jobs.record_event(
            conn, device_id="other", job_id="install-1", event=jobs.JobEvent(state=S.ACKED), now=NOW
        )
    assert jobs.EventStatus.NOT_FOUND == result.status


def test_the_first_started_event_stamps_the_start(store: Store) -> None:
    """`started_at` is the first acked-or-later event's time; later progress keeps it."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device, run_timeout_s=3600)], now=NOW)
        for minutes, state in ((5, S.ACKED), (9, S.INSTALLING)):
            jobs.record_event(
                conn,
                device_id=device,
                job_id="install-1",
                event=jobs.JobEvent(state=state),
                now=NOW + timedelta(minutes=minutes),
            )
        job = jobs.get_job(conn, "install-1")
    assert job is not None
    assert (NOW + timedelta(minutes=5), 3600) == (job["started_at"], job["run_timeout"])


@pytest.mark.parametrize(
    ("state", "ended_as"),
    [
        pytest.param(S.PENDING, S.PENDING, id="pending-kept-for-the-new-agent"),
        pytest.param(S.ACKED, S.FAILED, id="acked-failed"),
        pytest.param(S.INSTALLING, S.FAILED, id="installing-failed"),
        pytest.param(S.SUCCEEDED, S.SUCCEEDED, id="finished-kept"),
    ],
)
def test_re_enrolment_releases_unfinished_jobs(
    store: Store, state: JobState, ended_as: JobState
) -> None:
    """Enrolling the same machine again fails its started jobs (re-enrolled, with the state
    they were in) and leaves jobs not yet taken and finished ones alone."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device)], now=NOW)
        if state is not S.PENDING:
            jobs.record_event(
                conn,
                device_id=device,
                job_id="install-1",
                event=jobs.JobEvent(state=state),
                now=NOW,
            )
    again = enrolled(store)
    with store.read() as conn:
        job = jobs.get_job(conn, "install-1")
    assert job is not None
    expected_reason = None if ended_as is state else ("re-enrolled", state.value)
    assert (device, ended_as.value, expected_reason) == (
        again,
        job["state"],
        (job["end_reason"], job["end_state"]) if job["end_reason"] else None,
    )


def test_ending_leaves_a_job_the_agent_finished_meanwhile(store: Store) -> None:
    """The controller's time-out does not overwrite a job the agent finished in the meantime."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device), install(device, "install-2")], now=NOW)
        for job_id, state in (("install-1", S.INSTALLING), ("install-2", S.SUCCEEDED)):
            jobs.record_event(
                conn, device_id=device, job_id=job_id, event=jobs.JobEvent(state=state), now=NOW
            )
        ended = jobs.end_jobs(
            conn,
            ["install-1", "install-2"],
            state=S.FAILED,
            reason="timed-out",
            only_from=STARTED_STATES,
            now=NOW + timedelta(hours=9),
        )
        rows = {row["id"]: row for row in jobs.list_jobs(conn, scope="acme")}
    assert 1 == ended
    assert ("failed", "timed-out", "installing") == tuple(
        rows["install-1"][k] for k in ("state", "end_reason", "end_state")
    )
    assert ("succeeded", None) == (rows["install-2"]["state"], rows["install-2"]["end_reason"])


def test_a_batch_with_an_id_twice_and_one_issued_already_counts_the_new_ones(
    store: Store,
) -> None:
    """Within one batch the first job of an id is issued; ids issued before are left alone."""
    device = enrolled(store)
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(device, "install-1")], now=NOW)
        batch = [
            install(device, "install-1", window_key="later"),
            install(device, "install-2", window_key="first"),
            install(device, "install-2", window_key="second"),
            install(device, "install-3"),
        ]
        issued = jobs.insert_jobs(conn, batch, now=NOW + timedelta(1))
        rows = {row["id"]: row for row in jobs.list_jobs(conn, scope="acme")}
    assert 2 == issued
    assert {"install-1", "install-2", "install-3"} == rows.keys()
    assert rows["install-1"]["window_key"] is None  # the one issued before, unchanged
    assert "first" == rows["install-2"]["window_key"]


def test_install_outcomes_and_days_are_counted_by_the_database(store: Store) -> None:
    """The status's and the report's install counts group equal outcomes in the database and
    count each group's jobs: equal results on one UTC day counted as many times as jobs have
    them, a job ended just before midnight UTC on its own day, on both engines (PostgreSQL
    from a session in another time zone too)."""
    with store.write() as conn:
        device_id = enrol_linux(conn, "web-01", now=NOW)
    installed = {"P-1": {"result": "installed"}}
    mixed = {"P-1": {"result": "installed"}, "P-2": {"result": "failed", "reason": "dpkg"}}
    midnight = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    ended = [
        ("succeeded", installed, midnight + timedelta(hours=1)),
        ("succeeded", installed, midnight + timedelta(hours=2)),
        ("succeeded", installed, midnight + timedelta(hours=3)),
        ("failed", mixed, midnight - timedelta(minutes=30)),  # 2026-11-19 23:30Z
        ("pending", {}, NOW),
        ("delivered", {}, NOW),
    ]
    rows = [
        {
            "id": f"install-{n}",
            "device_id": device_id,
            "tenant": "acme/retail",
            "kind": "install",
            "patch_ids": ["P-1", "P-2"],
            "payload": {},
            "state": state,
            "revision": "main@sha1:0",
            "created_at": at - timedelta(minutes=20),
            "updated_at": at,
            "finished_at": at if state in ("succeeded", "failed") else None,
            "results": results,
        }
        for n, (state, results, at) in enumerate(ended)
    ]
    with store.write() as conn:
        conn.execute(schema.jobs.insert(), rows)
    with store.read() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'America/St_Johns'")  # UTC-03:30
        outcomes = jobs.install_outcomes(conn, issued_since=NOW - timedelta(days=2), scope=None)
        days = jobs.install_results_by_day(
            conn, scope="acme", start=NOW - timedelta(days=2), end=NOW
        )
        status = patch_status(conn, now=NOW)
    assert 6 == sum(n for *_, n in outcomes)
    assert ("succeeded", ["P-1", "P-2"], installed, 3) in outcomes
    assert sorted(
        [(date(2026, 11, 20), installed, 3), (date(2026, 11, 19), mixed, 1)], key=str
    ) == sorted(days, key=str)
    assert {"installed": 4, "failed": 1, "pending": 4} == status
