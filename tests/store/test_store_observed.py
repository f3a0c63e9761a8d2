"""`store.observed`: the streamed full read, equal values shared between devices, and documents
of several sources merged. Real stores on both engines (the `store` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

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
