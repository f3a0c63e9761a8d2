"""Agent reports in the store: scans ordered by time, replays, bulk batches, inventories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from controller.store import Store, devices, reports, schema

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def enrol(store: Store, hostname: str) -> str:
    with store.write() as conn:
        return devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname=hostname,
                os_family="windows",
                os_name="Windows Server 2022",
                os_version="10.0.20348",
                role="server",
                agent_version="1.0",
            ),
            poll_interval=60,
            now=NOW,
        ).device_id


def scan(at: datetime, *missing: str, reboot: bool = False) -> reports.Scan:
    return reports.Scan(
        scanned_at=at,
        reboot_required=reboot,
        missing=tuple((p, {"severity": "Critical"}) for p in missing),
        installed=(("KB1", at - timedelta(days=30)),),
    )


def write(store: Store, *batch: reports.Report) -> list[reports.Outcome]:
    with store.write() as conn:
        return reports.write_reports(conn, list(batch), now=NOW)


def states(store: Store, device_id: str) -> list[tuple[str, str]]:
    with store.read() as conn:
        found = devices.load_patch_states(conn, [device_id])
    return sorted(
        (e["id"], e["state"]) for _, entries in found[device_id].values() for e in entries
    )


def test_fresh_scan_replaces_the_patch_states(store: Store) -> None:
    """A newer scan replaces the device's agent patch states whole."""
    device = enrol(store, "web-01")
    write(store, reports.Report(device, scan=scan(NOW, "KB2", "KB3")))
    outcome = write(store, reports.Report(device, scan=scan(NOW + timedelta(hours=1), "KB3")))
    assert [reports.ScanOutcome.STORED] == [o.scan for o in outcome]
    assert [("KB1", "installed"), ("KB3", "missing")] == states(store, device)


def test_replayed_and_older_scans_change_nothing(store: Store) -> None:
    """The newest scan again is a duplicate; an older one is stale; neither touches the states."""
    device = enrol(store, "web-01")
    write(store, reports.Report(device, scan=scan(NOW, "KB2")))
    replay = write(store, reports.Report(device, scan=scan(NOW, "KB9")))
    older = write(store, reports.Report(device, scan=scan(NOW - timedelta(hours=1), "KB8")))
    with store.read() as conn:
        scans = conn.execute(sa.select(sa.func.count()).select_from(schema.scans)).scalar_one()
    assert [reports.ScanOutcome.DUPLICATE, reports.ScanOutcome.STALE] == [
        replay[0].scan,
        older[0].scan,
    ]
    assert [("KB1", "installed"), ("KB2", "missing")] == states(store, device)
    assert 1 == scans


def test_a_batch_writes_many_devices_and_the_same_device_in_order(store: Store) -> None:
    """One batch stores reports of several devices; two of one device apply in arrival order."""
    first, second = enrol(store, "web-01"), enrol(store, "web-02")
    outcomes = write(
        store,
        reports.Report(first, scan=scan(NOW, "KB2")),
        reports.Report(second, scan=scan(NOW, "KB5")),
        reports.Report(first, scan=scan(NOW + timedelta(minutes=5), "KB3")),
        reports.Report("no-such-device", scan=scan(NOW, "KB4")),
    )
    assert [True, True, True, False] == [o.known for o in outcomes]
    assert [("KB1", "installed"), ("KB3", "missing")] == states(store, first)
    assert [("KB1", "installed"), ("KB5", "missing")] == states(store, second)


def test_facts_heartbeat_and_reboot_signal_update_the_device(store: Store) -> None:
    """Facts replace the reported columns; every report moves last_seen; scans carry reboot."""
    device = enrol(store, "web-01")
    facts = reports.Facts(
        document='{"uptime":5}', os_version="10.0.20348.2700", labels={"env": "prod"}
    )
    with store.write() as conn:
        reports.write_reports(
            conn,
            [reports.Report(device, facts=facts, scan=scan(NOW, "KB2", reboot=True))],
            now=NOW + timedelta(minutes=1),
        )
    with store.read() as conn:
        row = devices.get_device(conn, device, scope="acme")
    assert row is not None
    assert ("10.0.20348.2700", {"env": "prod"}, {"uptime": 5}) == (
        row["os_version"],
        row["labels"],
        row["facts"],
    )
    assert (NOW + timedelta(minutes=1), NOW, True) == (
        row["last_seen"],
        row["last_scan_at"],
        row["reboot_required"],
    )


def test_inventory_is_kept_per_device(store: Store) -> None:
    """The package inventory is stored whole and replaced by the next one."""
    device = enrol(store, "db-01")
    packages = [{"name": "openssl", "version": "3.0.15-1", "arch": "amd64"}]
    write(store, reports.Report(device, inventory=reports.Inventory("12.7", "6.1.0", packages)))
    write(store, reports.Report(device, inventory=reports.Inventory("12.8", "6.1.0", packages * 2)))
    with store.read() as conn:
        summary = devices.device_inventory(conn, device)
    assert summary is not None
    assert ("12.8", 2) == (summary["os_build"], summary["package_count"])


def test_patch_entries_read_both_document_forms() -> None:
    """Scan documents and already-flat lists give the same flat entries."""
    scan_form = {"missing": [{"id": "KB2", "title": "x"}], "installed": [{"id": "KB1"}]}
    flat_form = [
        {"id": "KB2", "state": "missing", "title": "x"},
        {"id": "KB1", "state": "installed"},
    ]
    assert reports.patch_entries(flat_form) == reports.patch_entries(scan_form)
    assert [] == reports.patch_entries(None)


def test_old_scan_headers_can_be_pruned(store: Store) -> None:
    """Pruning drops old scan headers and keeps the device's current patch states."""
    device = enrol(store, "web-01")
    write(store, reports.Report(device, scan=scan(NOW, "KB2")))
    with store.write() as conn:
        gone = reports.prune_scans(conn, before=NOW + timedelta(days=1))
    assert 1 == gone
    assert [("KB1", "installed"), ("KB2", "missing")] == states(store, device)


def test_each_outcome_lists_what_its_report_changed(store: Store) -> None:
    """In one batch, the second report of a device is compared with the first one's writes."""
    first, second = enrol(store, "web-01"), enrol(store, "web-02")
    write(store, reports.Report(second, scan=scan(NOW, "KB2")))
    later = NOW + timedelta(minutes=5)
    outcomes = write(
        store,
        reports.Report(first, scan=scan(NOW, "KB2")),
        reports.Report(first, scan=scan(later, "KB2")),
        reports.Report(second, scan=scan(later, "KB2")),
        reports.Report(second, scan=scan(later + timedelta(minutes=5), "KB2", reboot=True)),
    )
    change = reports.Change
    assert [
        {change.FIRST_REPORT, change.SCAN},
        set(),
        set(),
        {change.SCAN},
    ] == [set(o.changes) for o in outcomes]


def test_a_scans_digest_is_the_same_in_both_forms_and_any_order() -> None:
    """The lists as pairs or as the serialised document, in any order, digest alike; the
    scan instant and installation times are not part of it."""
    pairs = reports.Scan(
        scanned_at=NOW,
        reboot_required=False,
        missing=(("KB2", {"severity": "Critical"}), ("KB3", {})),
        installed=(("KB1", NOW),),
    )
    document = reports.Scan(
        scanned_at=NOW + timedelta(hours=1),
        reboot_required=False,
        document='{"missing":[{"id":"KB3"},{"severity":"Critical","id":"KB2"}],'
        '"installed":[{"id":"KB1"}]}',
        counts=(2, 1),
    )
    assert pairs.planning_digest() == document.planning_digest()
