"""Change tracking (issue 14): every writer of a table the observed state reads records the
change in `planner_changes`, in its own transaction; the reader's mark never misses a row.

Real SQLite store; each scenario runs a store function and reads back what it recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.core.patches import FixedPackage, PatchRecord
from controller.kinds.common import OsFamily
from controller.runtime import observe
from controller.store import (
    Store,
    catalogue,
    changes,
    devices,
    findings,
    jobs,
    open_store,
    operations,
    reports,
    schema,
)
from controller.store.job_states import JobKind, JobState

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OPERATOR = operations.Operator(actor="alice", scope=None)
CONTROLLER = Path(__file__).parents[2] / "controller"

# The tables `observe` reads, each with the store modules that write it. A new table read, or
# a new module writing one of these, fails the tests below until it records its changes.
OBSERVED_TABLES = {
    "devices": {"devices", "reports", "findings", "operations"},
    "patch_states": {"reports", "findings"},
    "jobs": {"jobs"},
    "patches": {"catalogue"},
    "status": {"history"},  # only the catalogue version (`catalogue._bump_version`) is read
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def enrol(store: Store, hostname: str) -> str:
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
                labels={"env": "prod"},
            ),
            poll_interval=60,
            now=NOW,
        )
    assert isinstance(enrolled, devices.Enrolled)
    return enrolled.device_id


def scan(device_id: str, *, at: datetime, missing: tuple[str, ...]) -> reports.Report:
    return reports.Report(
        device_id=device_id,
        scan=reports.Scan(
            scanned_at=at, reboot_required=False, missing=tuple((p, {}) for p in missing)
        ),
    )


def inventory(device_id: str) -> reports.Report:
    packages = [{"name": "openssl", "version": "3.0.13-0ubuntu3.1", "arch": "amd64"}]
    return reports.Report(
        device_id=device_id,
        inventory=reports.Inventory(os_build=None, kernel=None, packages=packages),
    )


def new_job(device_id: str, job_id: str = "job-1") -> jobs.NewJob:
    return jobs.NewJob(
        id=job_id, device_id=device_id, tenant="acme", kind=JobKind.SCAN, revision="main@sha1:0"
    )


@contextmanager
def recorded(store: Store) -> Iterator[list[changes.Delta]]:
    """What was recorded inside the block, as one delta (appended when the block ends)."""
    with store.read() as conn:
        mark = changes.mark(conn)
    found: list[changes.Delta] = []
    yield found
    with store.read() as conn:
        found.append(changes.read(conn, mark))


def with_device(store: Store) -> str:
    return enrol(store, "web-01")


def with_job(store: Store) -> str:
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        jobs.insert_jobs(conn, [new_job(device_id)], now=NOW)
    return device_id


def _with_inventory(store: Store) -> str:
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        reports.write_reports(conn, [inventory(device_id)], now=NOW)
    return device_id


# A Debian fix for the openssl that `debian_inventory` lists older or fixed.
DSA = PatchRecord(
    id="DSA-5800-1",
    os=OsFamily.LINUX,
    packages=(FixedPackage("openssl", "3.0.15-1~deb12u1", "debian:12", source_name="openssl"),),
)


def debian_inventory(device_id: str, *, version: str = "3.0.11-1~deb12u2") -> reports.Report:
    """An inventory report of a Debian 12 device (facts included) with openssl `version`."""
    return reports.Report(
        device_id=device_id,
        facts=reports.Facts(
            document="{}", os_family="linux", os_name="Debian GNU/Linux", os_version="12.11"
        ),
        inventory=reports.Inventory(
            os_build=None,
            kernel=None,
            packages=[{"name": "openssl", "version": version, "arch": "amd64"}],
        ),
    )


def _with_debian_inventory_then_a_fix(store: Store) -> str:
    """A Debian device whose inventory was evaluated before the catalogue knew `DSA`; the fix
    is imported since (its findings are stale until the fleet is re-evaluated)."""
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        reports.write_reports(conn, [debian_inventory(device_id)], now=NOW)
    catalogue.upsert_records(store, [DSA], now=NOW)
    return device_id


def _with_failed_job(store: Store) -> str:
    """A device whose job failed (as its agent would report it: the controller itself fails
    only started jobs, `core.jobs.ENDINGS`), set up directly in the table."""
    device_id = with_job(store)
    with store.write() as conn:
        conn.execute(
            schema.jobs.update()
            .where(schema.jobs.c.id == "job-1")
            .values(state=JobState.FAILED.value, finished_at=NOW)
        )
    return device_id


# (setup → device id, the writer under test, run in one transaction)
Scenario = tuple[Callable[[Store], str], Callable[[Any, str], Any]]
SCENARIOS: dict[str, Scenario] = {
    "enrol again": (
        with_device,
        lambda conn, _d: devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme",
                hostname="web-01",
                os_family="linux",
                os_name="Ubuntu",
                os_version="24.04",
                role="db",
                agent_version="1.0",
                labels={},
            ),
            poll_interval=60,
            now=NOW,
        ),
    ),
    "retire": (
        with_device,
        lambda conn, _d: operations.retire_device(conn, "web-01", who=OPERATOR, now=NOW),
    ),
    "scan report": (
        with_device,
        lambda conn, d: reports.write_reports(conn, [scan(d, at=NOW, missing=("X",))], now=NOW),
    ),
    "facts report": (
        with_device,
        lambda conn, d: reports.write_reports(
            conn,
            [reports.Report(d, facts=reports.Facts(document="{}", labels={"env": "dev"}))],
            now=NOW,
        ),
    ),
    "inventory report (feed findings)": (
        with_device,
        lambda conn, d: reports.write_reports(conn, [inventory(d)], now=NOW),
    ),
    "fleet re-evaluation": (
        _with_debian_inventory_then_a_fix,
        lambda conn, _d: findings.reevaluate_fleet(conn, now=NOW),
    ),
    "job issued": (
        with_device,
        lambda conn, d: jobs.insert_jobs(conn, [new_job(d)], now=NOW),
    ),
    "job delivered": (
        with_job,
        lambda conn, _d: jobs.mark_delivered(conn, ["job-1"], now=NOW),
    ),
    "job event": (
        with_job,
        lambda conn, d: jobs.record_event(
            conn,
            device_id=d,
            job_id="job-1",
            event=jobs.JobEvent(state=JobState.ACKED, seq=1),
            now=NOW,
        ),
    ),
    "job cancelled": (
        with_job,
        lambda conn, _d: operations.cancel_job(conn, "job-1", who=OPERATOR, now=NOW),
    ),
    "job retried": (
        _with_failed_job,
        lambda conn, _d: operations.retry_job(
            conn, "job-1", who=OPERATOR, now=NOW, pickup=timedelta(hours=1)
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_writer_records_its_device(store: Store, name: str) -> None:
    """A store function that changes a planner input records the device in the same commit."""
    setup, writer = SCENARIOS[name]
    device_id = setup(store)
    with recorded(store) as found, store.write() as conn:
        writer(conn, device_id)
    assert device_id in found[0].devices


def test_a_heartbeat_records_nothing(store: Store) -> None:
    """A check-in that changes no planner input (same scan, online) is not a change."""
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        reports.write_reports(
            conn, [scan(device_id, at=NOW, missing=("X",)), reports.Report(device_id)], now=NOW
        )
    with recorded(store) as found, store.write() as conn:
        reports.write_reports(conn, [reports.Report(device_id)], now=NOW + timedelta(seconds=30))
        reports.write_reports(
            conn, [scan(device_id, at=NOW, missing=("X",))], now=NOW + timedelta(seconds=40)
        )
    assert (frozenset(), False) == (found[0].devices, found[0].catalogue)


def test_a_repeated_inventory_records_nothing(store: Store) -> None:
    """The same inventory again (same packages, same facts), and a fleet re-evaluation against
    the same catalogue, leave the feed findings as they were: no change is recorded."""
    catalogue.upsert_records(store, [DSA], now=NOW)
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        reports.write_reports(conn, [debian_inventory(device_id)], now=NOW)
    with recorded(store) as found, store.write() as conn:
        reports.write_reports(conn, [debian_inventory(device_id)], now=NOW + timedelta(seconds=30))
        findings.reevaluate_fleet(conn, now=NOW + timedelta(seconds=31))
    assert (frozenset(), False) == (found[0].devices, found[0].catalogue)


def test_a_catalogue_import_records_the_catalogue(store: Store) -> None:
    """Importing records that change the catalogue records a catalogue change."""
    with recorded(store) as found:
        catalogue.upsert_records(store, [PatchRecord(id="USN-1-1", os=OsFamily.LINUX)], now=NOW)
    assert found[0].catalogue


def test_observe_reads_only_the_tracked_tables(store: Store) -> None:
    """The tables `observe` reads are exactly those whose writers are checked here."""
    enrol(store, "web-01")
    statements: list[str] = []

    def capture(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.read() as conn:
            observe.observe(conn, now=NOW)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    read = {t for s in statements for t in re.findall(r"\b(?:FROM|JOIN) (\w+)", s)}
    assert set(OBSERVED_TABLES) == read


def test_only_known_modules_write_the_observed_tables() -> None:
    """No module outside the checked writers writes a table the observed state reads."""
    writes = re.compile(
        r"schema\.(\w+)\.(?:insert|update|delete)\(|insert\(schema\.(\w+)\)"
        r"|(?:INSERT INTO|UPDATE|DELETE FROM) (\w+)"
    )
    found: dict[str, set[str]] = {}
    for path in CONTROLLER.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for match in writes.finditer(path.read_text()):
            table = next(g for g in match.groups() if g)
            if table in OBSERVED_TABLES and table != "status":
                found.setdefault(table, set()).add(path.stem)
    assert {t: w for t, w in OBSERVED_TABLES.items() if t != "status"} == found


def test_the_mark_rereads_numbers_that_commit_late(store: Store) -> None:
    """A change numbered below the high-water mark but committed after it is still read
    (PostgreSQL numbers rows at insert, not at commit)."""
    with store.write() as conn:
        changes.record_devices(conn, ["a", "b", "c"], now=NOW)
        conn.execute(
            schema.planner_changes.delete().where(schema.planner_changes.c.device_id == "b")
        )
    with store.read() as conn:
        mark = changes.mark(conn)
    assert frozenset({2}) == mark.gaps
    with store.write() as conn:  # the late commit of number 2
        conn.execute(
            schema.planner_changes.insert().values(seq=2, device_id="late", recorded_at=NOW)
        )
    with store.read() as conn:
        delta = changes.read(conn, mark)
    assert (frozenset({"late"}), frozenset()) == (delta.devices, delta.mark.gaps)


def test_prune_drops_old_rows(store: Store) -> None:
    """Rows recorded before the cut are deleted; newer ones stay."""
    with store.write() as conn:
        changes.record_devices(conn, ["old"], now=NOW - timedelta(hours=2))
        changes.record_devices(conn, ["new"], now=NOW)
        assert 1 == changes.prune(conn, before=NOW - timedelta(hours=1))
    with store.read() as conn:
        assert frozenset({"new"}) == changes.read(conn, changes.Mark()).devices


# --- every device field the planner reads, changed by its writer (issue 14 drift) ------------
# `store.observed` reads of a device row: tenant, name, os_family, os_name, os_version, role,
# labels, enrolled_at, last_seen and poll_interval (`DeviceView`); last_scan_at,
# last_scan_received_at, reboot_required and kernel_reboot with the `agent` and `feed` patch
# states (`ScanView`); the facts' `uptime` and `lastBootAt` while a reboot is asked for; and
# retired_at. Each scenario changes one through the store function that writes it.

LATER = NOW + timedelta(minutes=1)


def facts_report(device_id: str, **facts: Any) -> reports.Report:
    document = {"uptime": 5 * 3600, **facts}
    columns = {k: v for k, v in facts.items() if k in {"os_name", "os_version", "role", "labels"}}
    return reports.Report(device_id, facts=reports.Facts(document=json.dumps(document), **columns))


def _rebooting_device(store: Store) -> str:
    """A Debian device whose last scan asks for a reboot, with a patch installed an hour ago
    (after its boot), its facts with an uptime, and an inventory evaluated against `DSA`."""
    catalogue.upsert_records(store, [DSA], now=NOW - timedelta(days=1))
    device_id = enrol(store, "web-01")
    installed = reports.Scan(
        scanned_at=NOW - timedelta(minutes=10),
        reboot_required=True,
        missing=(("X", {}),),
        installed=(("Y", NOW - timedelta(hours=1)),),
    )
    with store.write() as conn:
        reports.write_reports(
            conn,
            [
                debian_inventory(device_id),
                facts_report(device_id),
                reports.Report(device_id, scan=installed),
            ],
            now=LATER - timedelta(seconds=30),  # online still at LATER: no `Change.ONLINE`
        )
    return device_id


FIELD_CHANGES: dict[str, Callable[[Any, str], Any]] = {
    "os name and version (facts)": lambda conn, d: reports.write_reports(
        conn, [facts_report(d, os_name="Debian GNU/Linux", os_version="13")], now=LATER
    ),
    "role (facts)": lambda conn, d: reports.write_reports(
        conn, [facts_report(d, role="gateway")], now=LATER
    ),
    "labels (facts)": lambda conn, d: reports.write_reports(
        conn, [facts_report(d, labels={"env": "dev"})], now=LATER
    ),
    "uptime (facts, a reboot asked for)": lambda conn, d: reports.write_reports(
        conn, [facts_report(d, uptime=30)], now=LATER
    ),
    "lastBootAt (facts, a reboot asked for)": lambda conn, d: reports.write_reports(
        conn, [facts_report(d, lastBootAt=(NOW - timedelta(minutes=30)).isoformat())], now=LATER
    ),
    "missing set (scan)": lambda conn, d: reports.write_reports(
        conn, [scan(d, at=NOW, missing=("X", "Z"))], now=LATER
    ),
    "reboot signal (scan)": lambda conn, d: reports.write_reports(
        conn, [scan(d, at=NOW, missing=("X",))], now=LATER
    ),
    "feed findings and kernel (inventory)": lambda conn, d: reports.write_reports(
        conn, [debian_inventory(d, version="3.0.15-1~deb12u1")], now=LATER
    ),
    "tenant, name, poll interval, enrolment (enrol again)": lambda conn, _d: devices.enrol(
        conn,
        devices.Enrolment(
            tenant="acme/shop",
            hostname="web-01",
            os_family="linux",
            os_name="Ubuntu",
            os_version="24.04",
            role="server",
            agent_version="1.0",
            labels={"env": "prod"},
        ),
        poll_interval=300,
        now=LATER,
    ),
    "retired": lambda conn, _d: operations.retire_device(conn, "web-01", who=OPERATOR, now=LATER),
}


@pytest.mark.parametrize("name", sorted(FIELD_CHANGES))
def test_the_incremental_observed_state_follows_each_field_the_planner_reads(
    store: Store, name: str
) -> None:
    """After a writer changes one planner input of a device, the observed state brought up to
    date from the recorded changes equals a full read of the store (what the periodic resync
    compares: `patchctl_reconcile_drift_total`), and the full read did change."""
    device_id = _rebooting_device(store)
    observer = observe.Observer()
    at = LATER + timedelta(seconds=1)
    with store.read() as conn:
        before = observer.full(conn, now=at).observed
    with store.write() as conn:
        FIELD_CHANGES[name](conn, device_id)
    with store.read() as conn:
        kept = observer.incremental(conn, now=at).observed
        found = observe.Observer().full(conn, now=at).observed
    assert observe.differing_devices(before, found, now=at)  # the scenario changed something
    assert set() == observe.differing_devices(kept, found, now=at)


def test_a_new_uptime_records_nothing_without_a_reboot_asked_for(store: Store) -> None:
    """The agent's uptime, new in every report, is read by the planner only while the scan
    asks for a reboot: otherwise a report with a new uptime is no change."""
    device_id = enrol(store, "web-01")
    with store.write() as conn:
        reports.write_reports(
            conn, [scan(device_id, at=NOW, missing=("X",)), facts_report(device_id)], now=NOW
        )
    with recorded(store) as found, store.write() as conn:
        reports.write_reports(
            conn, [facts_report(device_id, uptime=9 * 3600)], now=NOW + timedelta(seconds=30)
        )
    assert (frozenset(), False) == (found[0].devices, found[0].catalogue)
