"""`store.observed`: the streamed full read, equal values shared between devices, and documents
of several sources merged. Real stores on both engines (the `store` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from controller.core.observed import JobKind, JobState, PatchResult
from controller.store import Store, devices, findings, reports, schema
from controller.store import observed as stored

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def enrol(store: Store, hostname: str, *, ring: str = "r0") -> str:
    with store.write() as conn:
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme",
                hostname=hostname,
                os_family="linux",
                os_name="Ubuntu",
                os_version="24.04",
                role="server",
                agent_version="1.0",
                labels={"ring": ring},
            ),
            poll_interval=60,
            now=NOW,
        )
    assert isinstance(enrolled, devices.Enrolled)
    return enrolled.device_id


def report(store: Store, device_id: str, *missing: str, installed: tuple[str, ...] = ()) -> None:
    scan = reports.Scan(
        scanned_at=NOW - timedelta(minutes=5),
        reboot_required=False,
        missing=tuple((p, {}) for p in missing),
        installed=tuple((p, {}) for p in installed),
    )
    with store.write() as conn:
        reports.write_reports(conn, [reports.Report(device_id, scan=scan)], now=NOW)


def read(store: Store, device_ids: list[str] | None = None) -> stored.DeviceRows:
    with store.read() as conn:
        return stored.load_devices(conn, findings.current_catalogue(conn), device_ids)


def test_a_fleet_larger_than_one_fetch_is_read_whole_in_id_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are streamed a few at a time; every device and scan is read, in id order, and each
    reads as it does alone."""
    monkeypatch.setattr(stored, "STREAM_ROWS", 2)
    ids = [enrol(store, f"web-{n}") for n in range(5)]
    for n, device_id in enumerate(ids[:4]):
        report(store, device_id, f"USN-{n}-1", "USN-9-1")
    whole = read(store)
    alone = [read(store, [i]) for i in ids]
    assert sorted(ids) == list(whole.devices)
    assert set(ids[:4]) == set(whole.scans)
    assert [a.devices[i] for a, i in zip(alone, ids, strict=True)] == [
        whole.devices[i] for i in ids
    ]
    assert [a.scans.get(i) for a, i in zip(alone, ids, strict=True)] == [
        whole.scans.get(i) for i in ids
    ]


def test_equal_values_are_one_object(store: Store) -> None:
    """Devices reporting the same scan share its id tuples, and equal labels one map."""
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    for device_id in ids:
        report(store, device_id, "USN-1-1", "USN-2-1", installed=("USN-3-1",))
    found = read(store)
    first, *others = (found.scans[i] for i in ids)
    views = [found.devices[i] for i in ids]
    assert ("USN-1-1", "USN-2-1") == first.missing
    assert all(s.missing is first.missing and s.installed is first.installed for s in others)
    assert all(v.labels is views[0].labels and v.tenant is views[0].tenant for v in views)


def test_a_re_read_answers_the_earlier_objects_of_what_did_not_change(store: Store) -> None:
    """Given an earlier read, a view or scan equal to the earlier one is that very object (a
    resync holds one fleet), and so is the id keying it; a device that checked in or scanned
    since reads anew."""
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    for device_id in ids:
        report(store, device_id, "USN-1-1")
    before = read(store)
    later = reports.Scan(scanned_at=NOW, reboot_required=False, missing=(("USN-2-1", {}),))
    with store.write() as conn:  # a new scan
        reports.write_reports(conn, [reports.Report(ids[1], scan=later)], now=NOW)
    with store.write() as conn:  # a check-in
        conn.execute(
            schema.devices.update()
            .where(schema.devices.c.id == ids[2])
            .values(last_seen=NOW + timedelta(minutes=1))
        )
    with store.read() as conn:
        again = stored.load_devices(conn, findings.current_catalogue(conn), previous=before)
    assert again == read(store)  # the same answer as without `previous`
    assert again.devices[ids[0]] is before.devices[ids[0]]
    assert again.scans[ids[0]] is before.scans[ids[0]]
    assert again.devices[ids[1]] is before.devices[ids[1]]  # its row is as it was
    assert again.scans[ids[1]] is not before.scans[ids[1]]
    assert ("USN-2-1",) == again.scans[ids[1]].missing
    assert again.devices[ids[2]] is not before.devices[ids[2]]
    assert NOW + timedelta(minutes=1) == again.devices[ids[2]].last_seen
    kept_keys = {key: key for key in before.devices}
    for rows in (again.devices, again.scans):  # one string per device id, the earlier one
        assert all(kept_keys[key] is key for key in rows if key != ids[2])


def test_agent_and_feed_documents_merge(store: Store) -> None:
    """Missing if either source says missing, unless one lists it installed; a device with
    only a feed document has a scan stamped at the evaluation."""
    agent_and_feed, feed_only = enrol(store, "web-0"), enrol(store, "web-1")
    report(store, agent_and_feed, "USN-1-1", "USN-2-1")
    evaluated = NOW - timedelta(minutes=1)
    document = {"missing": [{"id": "DSA-5-1"}], "installed": [{"id": "USN-2-1"}]}
    with store.write() as conn:
        conn.execute(
            schema.patch_states.insert(),
            [
                {"device_id": i, "source": "feed", "observed_at": evaluated, "patches": document}
                for i in (agent_and_feed, feed_only)
            ],
        )
    found = read(store)
    both, feed = found.scans[agent_and_feed], found.scans[feed_only]
    assert (("USN-1-1", "DSA-5-1"), ("USN-2-1",)) == (both.missing, both.installed)
    assert (("DSA-5-1",), evaluated) == (feed.missing, feed.scanned_at)


def test_times_read_raw_are_the_column_types_times(store: Store) -> None:
    """Times read without per-value type processing are the aware UTC instants the table's
    `UtcDateTime` columns give (microseconds kept; on SQLite equal ones one object); on
    PostgreSQL also from a session in another time zone."""
    at = [NOW + timedelta(seconds=n, microseconds=7 * n) for n in range(3)]
    ids = []
    for n, when in enumerate(at):
        with store.write() as conn:
            enrolled = devices.enrol(
                conn,
                devices.Enrolment(
                    tenant="acme",
                    hostname=f"web-{n}",
                    os_family="linux",
                    os_name="Ubuntu",
                    os_version="24.04",
                    role="server",
                    agent_version="1.0",
                    labels={},
                ),
                poll_interval=60,
                now=at[0],  # one instant for all: shared
            )
            assert isinstance(enrolled, devices.Enrolled)
            ids.append(enrolled.device_id)
            scan = reports.Scan(scanned_at=when - timedelta(minutes=5), reboot_required=False)
            reports.write_reports(conn, [reports.Report(enrolled.device_id, scan=scan)], now=when)
    d = schema.devices.c
    with store.read() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'America/St_Johns'")  # UTC-03:30
        typed = {
            row.id: (row.enrolled_at, row.last_seen, row.last_scan_at, row.last_scan_received_at)
            for row in conn.execute(sa.select(schema.devices).where(d.id.in_(ids)))
        }
        found = stored.load_devices(conn, findings.current_catalogue(conn))
    raw = {
        i: (
            found.devices[i].enrolled_at,
            found.devices[i].last_seen,
            found.scans[i].scanned_at,
            found.scans[i].received_at,
        )
        for i in ids
    }
    instants = [t for times in raw.values() for t in times]
    assert typed == raw
    assert all(t is not None and t.tzinfo is UTC for t in instants)
    assert [at[1] - timedelta(minutes=5), at[1]] == list(raw[ids[1]][2:])
    if store.dialect == "sqlite":  # its text parsed once per distinct value
        assert found.devices[ids[0]].enrolled_at is found.devices[ids[2]].enrolled_at


def test_the_row_tuple_names_the_query_columns_in_order() -> None:
    """The named tuple the streamed rows are read into has the query's columns, in order."""
    columns = stored._devices_query(None).selected_columns
    assert [column.key for column in columns] == list(stored._Row._fields)


def test_jobs_read_as_their_stored_columns_say(store: Store) -> None:
    """`load_jobs` reads the columns it needs raw (times as text, JSON as text, one member of
    the payload) and converts each distinct value once; its views are what the table's typed
    columns say (`_typed_job`, the reading it replaced), odd stored shapes included, on both
    engines and from a PostgreSQL session in another time zone."""
    device_id = enrol(store, "web-1")
    at = [NOW - timedelta(hours=n, microseconds=13 * n) for n in range(6)]
    results = [
        {},
        {"P-1": {"result": "installed"}, "P-2": {"result": "failed", "reason": "dpkg: error"}},
        {"P-1": {"result": "exploded"}, "P-2": "not an object"},
        ["not", "an", "object"],
    ]
    payloads = [{"occasion": "due:2026-11-30T10:00Z"}, {}, {"occasion": 7}, {"reboot": "never"}]
    rows = [
        {
            "id": f"job-{n}",
            "device_id": device_id,
            "tenant": "acme",
            "kind": ("scan", "install", "script")[n % 3],
            "patch_ids": [["P-1", "P-2"], [], ["P-3", 4, ""], "not a list"][n % 4],
            "payload": payloads[n % 4],
            "state": ("pending", "succeeded", "failed", "delivered", "expired", "installing")[n],
            "revision": "main@sha1:0",
            "window_key": [None, "acme/weekly@2026-11-29T01:00Z", "acme/weekly", "@x"][n % 4],
            "deadline": None if n % 2 else at[n] + timedelta(hours=4),
            "created_at": at[n],
            "updated_at": at[n % 2],  # two distinct instants: shared on SQLite
            "results": results[n % 4],
            "reboot_required": (None, True, False)[n % 3],
            "started_at": at[n] if n % 3 else None,
            "run_timeout": (None, 0, 3600)[n % 3],
            "end_reason": "no-agent" if n == 4 else None,
        }
        for n in range(6)
    ]
    with store.write() as conn:
        conn.execute(schema.jobs.insert(), rows)
    j = schema.jobs.c
    with store.read() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'America/St_Johns'")  # UTC-03:30
        typed = [
            _typed_job(row)
            for row in conn.execute(sa.select(schema.jobs).order_by(j.created_at, j.id))
        ]
        found = stored.load_jobs(conn, since=NOW - timedelta(days=1))
        by_device = stored.load_jobs(conn, since=NOW - timedelta(days=1), device_ids=[device_id])
    assert typed == found == by_device
    assert 6 == len(found)
    assert [("acme/weekly", "2026-11-29T01:00Z")] == [
        (job.window, job.occurrence) for job in found if job.id == "job-1"
    ]
    assert "due:2026-11-30T10:00Z" == next(job.occurrence for job in found if job.id == "job-0")
    if store.dialect == "sqlite":
        assert found[0].updated_at is found[2].updated_at


def _typed_job(row: sa.Row[Any]) -> stored.JobView:
    """A job view from a whole row of the typed table (`schema.jobs`): the reading `load_jobs`
    replaced, kept here as its specification."""
    window, _, occurrence = (row.window_key or "").partition("@")
    payload = row.payload if isinstance(row.payload, dict) else {}
    occasion = payload.get("occasion")
    results, reasons = {}, {}
    for patch_id, outcome in (row.results if isinstance(row.results, dict) else {}).items():
        entry = outcome if isinstance(outcome, dict) else {}
        result = str(entry.get("result", ""))
        known = result in {r.value for r in PatchResult}
        results[patch_id] = PatchResult(result) if known else PatchResult.SKIPPED
        if entry.get("reason"):
            reasons[patch_id] = str(entry["reason"])
    stored_ids = row.patch_ids if isinstance(row.patch_ids, list) else []
    return stored.JobView(
        id=row.id,
        device_id=row.device_id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        patch_ids=tuple(str(p) for p in stored_ids if isinstance(p, str | int) and p != ""),
        window=window or None,
        occurrence=occurrence or (occasion if isinstance(occasion, str) else None),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deadline=row.deadline,
        results=results,
        reasons=reasons,
        reboot_required=bool(row.reboot_required),
        started_at=row.started_at,
        run_timeout=timedelta(seconds=row.run_timeout) if row.run_timeout else None,
        end_reason=row.end_reason,
    )


def test_the_job_row_tuple_names_the_query_columns_in_order() -> None:
    """The named tuple job rows are read into has the job query's columns, in order."""
    columns = stored._jobs_query(NOW, None).selected_columns
    assert [column.key for column in columns] == list(stored._JobRow._fields)
