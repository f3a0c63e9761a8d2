"""Incremental passes (issue 14): a pass reads only the devices that changed, plans what a full
pass plans, and the periodic resync reads everything and counts any drift.

Real git repository (the example), real SQLite store, a clock the test moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.core.observed import JobKind, JobState
from controller.core.patches import PatchRecord
from controller.core.plan import Plan, plan
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime import observe
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.store import Store, catalogue, devices, open_store, operations, reports, schema
from controller.store import jobs as jobs_store
from controller.testing import PolicyRepo

# Sunday 2026-11-29 02:30 Europe/Berlin: the example's windows-weekly is open (cutoff 05:00).
IN_WINDOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
PATCHES = ("KB5044284", "KB5099999")
OPERATOR = operations.Operator(actor="alice", scope=None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fleet(store: Store, count: int) -> list[str]:
    """`count` Windows devices in acme/retail (env=prod), each with a scan missing both patches."""
    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id=patch_id,
                os=OsFamily.WINDOWS,
                vendor="microsoft",
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                released=date(2026, 10, 8),
            )
            for patch_id in PATCHES
        ],
        now=IN_WINDOW - timedelta(days=1),
    )
    ids = []
    with store.write() as conn:
        for number in range(count):
            enrolled = devices.enrol(
                conn,
                devices.Enrolment(
                    tenant="acme/retail",
                    hostname=f"WEB-{number:02d}",
                    os_family="windows",
                    os_name="Windows Server 2022",
                    os_version="21H2",
                    role="server",
                    agent_version="1.0",
                    labels={"env": "prod"},
                ),
                poll_interval=60,
                now=IN_WINDOW - timedelta(days=1),
            )
            assert isinstance(enrolled, devices.Enrolled)
            ids.append(enrolled.device_id)
    report(store, ids, missing=PATCHES, at=IN_WINDOW - timedelta(seconds=30))
    return ids


def report(store: Store, ids: list[str], *, missing: tuple[str, ...], at: datetime) -> None:
    with store.write() as conn:
        reports.write_reports(
            conn,
            [
                reports.Report(
                    device_id=device_id,
                    scan=reports.Scan(
                        scanned_at=at,
                        reboot_required=False,
                        missing=tuple((p, {}) for p in missing),
                    ),
                )
                for device_id in ids
            ],
            now=at,
        )


def reconciler(repo: PolicyRepo, store: Store, tmp_path: Path, clock: Clock) -> Reconciler:
    return Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=clock,
        resync=timedelta(minutes=10),
    )


def compared(runner: Reconciler) -> tuple[Outcome, Plan]:
    """A pass, and the plan a full read of the store just before it gives."""
    assert runner.last_valid is not None
    now = runner.clock()
    with runner.store.read() as conn:
        fresh = observe.observe(conn, now=now)
    return runner.reconcile(), plan(runner.last_valid, fresh, now=now)


def test_a_pass_after_three_reports_reads_those_three_and_plans_as_a_full_pass(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Reports on 3 of 8 devices: the next pass reads 3 devices, and its plan is a full pass's."""
    ids = fleet(store, 8)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    first = runner.reconcile()
    assert (1, 8) == (first.counts["fullPass"], first.counts["devicesRead"])
    runner.reconcile()  # reads back the devices given jobs by the first pass
    report(store, ids[:3], missing=("KB5099999",), at=IN_WINDOW + timedelta(minutes=1))
    with store.write() as conn:  # a heartbeat changes no planner input
        reports.write_reports(conn, [reports.Report(ids[5])], now=IN_WINDOW + timedelta(minutes=1))
    clock.now = IN_WINDOW + timedelta(minutes=2)
    second, full = compared(runner)
    assert (0, 3, 0) == (
        second.counts["fullPass"],
        second.counts["devicesRead"],
        second.counts["drift"],
    )
    assert full == second.plan


def test_the_issued_jobs_come_back_as_changes_of_their_devices(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """The devices given jobs by a pass are read back on the next one; then nothing is read."""
    fleet(store, 4)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    issued = runner.reconcile().counts["jobsIssued"]
    clock.now += timedelta(minutes=1)
    second, full = compared(runner)
    clock.now += timedelta(minutes=1)
    third = runner.reconcile()
    assert (issued, 0, 0) == (
        second.counts["devicesRead"],
        second.counts["jobsIssued"],
        third.counts["devicesRead"],
    )
    assert full == second.plan


def test_the_resync_reads_everything_and_counts_drift(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Every resync period a pass is full; a write that bypassed change tracking is drift."""
    fleet(store, 3)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    passes = []
    for minutes in (0, 1, 11):
        clock.now = IN_WINDOW + timedelta(minutes=minutes)
        passes.append(runner.reconcile().counts)
    assert [(1, 0), (0, 0), (1, 0)] == [(c["fullPass"], c["drift"]) for c in passes]
    with store.write() as conn:  # not through a store function: nothing is recorded
        conn.execute(schema.devices.update().values(role="database"))
    clock.now = IN_WINDOW + timedelta(minutes=12)
    assert 0 == runner.reconcile().counts["fullPass"]
    clock.now = IN_WINDOW + timedelta(minutes=22)
    resync = runner.reconcile()
    assert (1, 3, 1) == (resync.counts["fullPass"], resync.counts["drift"], runner.drift_total)


def test_a_pass_after_a_forgotten_state_is_full(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """After an error or a change of leader (the observer forgets), the next pass is full."""
    fleet(store, 2)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    runner.reconcile()
    runner.observer.forget()
    clock.now += timedelta(minutes=1)
    after = runner.reconcile()
    assert (1, 2) == (after.counts["fullPass"], after.counts["devicesRead"])


def test_retired_and_enrolled_devices_are_changes(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """An enrolment and a retirement between passes keep the plan a full read's."""
    ids = fleet(store, 3)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    runner.reconcile()
    runner.reconcile()  # reads back the devices given jobs by the first pass
    with store.write() as conn:
        operations.retire_device(conn, "web-01", who=OPERATOR, now=clock.now)
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname="WEB-09",
                os_family="windows",
                os_name="Windows Server 2022",
                os_version="21H2",
                role="server",
                agent_version="1.0",
                labels={"env": "prod"},
            ),
            poll_interval=60,
            now=clock.now,
        )
    assert isinstance(enrolled, devices.Enrolled)
    report(store, [enrolled.device_id], missing=PATCHES, at=clock.now)
    clock.now += timedelta(minutes=1)
    second, full = compared(runner)
    assert (0, 2) == (second.counts["fullPass"], second.counts["devicesRead"])
    assert full == second.plan
    planned = {d.device_id for d in second.plan.devices} if second.plan else set()
    assert {ids[0], ids[2], enrolled.device_id} == planned


def test_a_device_that_only_checked_in_stays_online(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Heartbeats record no change, yet the kept `last_seen` is read again once it would make
    the device offline: the incremental state says online exactly when a full read does."""
    ids = fleet(store, 2)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    runner.reconcile()
    runner.reconcile()  # reads back the devices given jobs by the first pass
    with store.write() as conn:
        reports.write_reports(conn, [reports.Report(ids[0])], now=IN_WINDOW + timedelta(seconds=60))
    clock.now = IN_WINDOW + timedelta(seconds=120)
    outcome = runner.reconcile()
    with store.read() as conn:
        fresh = observe.observe(conn, now=clock.now)
    kept = runner.observer.last
    assert kept is not None
    online = {d.id: d.is_online(now=clock.now) for d in kept.devices}
    assert ({ids[0]: True, ids[1]: False}, set(), 0) == (
        online,
        observe.differing_devices(kept, fresh, now=clock.now),
        outcome.counts["devicesRead"],
    )


def test_a_commit_that_changes_no_compliance_reads_and_writes_no_compliance_row(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """An Approval of a patch the devices do not miss re-plans them (their policy set changed)
    but changes none of their compliance: no stored row is compared or rewritten. A Baseline
    change that does change it rewrites the rows, to what a fresh full pass writes."""
    ids = fleet(store, 4)
    clock = Clock(IN_WINDOW)
    runner = reconciler(example_repo, store, tmp_path, clock)
    runner.reconcile()
    runner.reconcile()
    before = compliance_rows(store)
    example_repo.write("policies/approvals/unrelated.yaml", UNRELATED_APPROVAL)
    example_repo.commit("approve a patch nobody misses")
    clock.now += timedelta(minutes=1)
    approved = runner.reconcile()
    assert runner.planner.replanned is not None
    assert set(ids) <= runner.planner.replanned
    assert frozenset() == runner.planner.compliance_changed
    assert 0 == approved.counts["complianceWritten"]
    assert before == compliance_rows(store)
    baseline = (example_repo.path / "policies/baselines/windows-servers.yaml").read_text()
    example_repo.write(
        "policies/baselines/windows-servers.yaml",
        baseline.replace("staleScanAfter: 7d", "staleScanAfter: 1d"),
    )
    example_repo.commit("windows baseline: scans go stale after a day")
    clock.now += timedelta(days=2)  # the scans are stale now: the records change
    changed = runner.reconcile()
    assert changed.counts["complianceWritten"] > 0
    after = compliance_rows(store)
    fresh = reconciler(example_repo, store, tmp_path / "fresh", clock)
    with store.write() as conn:
        conn.execute(schema.compliance.delete())
    fresh.reconcile()
    assert after.keys() == compliance_rows(store).keys()
    assert {k: v[:2] for k, v in after.items()} == {
        k: v[:2] for k, v in compliance_rows(store).items()
    }


UNRELATED_APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: unrelated, tenant: acme/retail}
spec:
  patches: [KB5000001]
  targets: {selector: {labels: {env: prod}}}
  reason: a patch none of the fleet misses
"""


def compliance_rows(store: Store) -> dict[tuple[str, str], tuple[object, ...]]:
    """(device, baseline) → (state, patches document, evaluated at) of every stored row."""
    c = schema.compliance.c
    with store.read() as conn:
        rows = conn.execute(
            sa.select(c.device_id, c.baseline, c.state, c.patches, c.evaluated_at)
        ).all()
    return {(r.device_id, r.baseline): (r.state, r.patches, r.evaluated_at) for r in rows}


def test_jobs_leave_an_incremental_ledger_when_they_leave_the_job_horizon(
    store: Store,
) -> None:
    """A finished job created more than `JOB_HORIZON` ago leaves the ledger of an incremental
    pass when it leaves a full read's, and its device counts as changed; a job still in flight
    stays whatever its age; the other devices' entries are the very objects kept."""
    ids = fleet(store, 3)
    old, older_in_flight, recent = ids
    created = IN_WINDOW - observe.JOB_HORIZON + timedelta(hours=1)
    with store.write() as conn:
        for device_id, at in ((old, created), (older_in_flight, created), (recent, IN_WINDOW)):
            jobs_store.insert_jobs(
                conn,
                [
                    jobs_store.NewJob(
                        id=f"scan-{device_id}",
                        device_id=device_id,
                        tenant="acme/retail",
                        kind=JobKind.SCAN,
                        revision="main@sha1:test",
                    )
                ],
                now=at,
            )
        conn.execute(
            schema.jobs.update()
            .where(schema.jobs.c.id.in_([f"scan-{old}", f"scan-{recent}"]))
            .values(state=JobState.SUCCEEDED.value)
        )
    observer = observe.Observer()
    with store.read() as conn:
        first = observer.full(conn, now=IN_WINDOW)
    assert {old, older_in_flight, recent} == set(first.observed.jobs.by_device)
    later = IN_WINDOW + timedelta(hours=2)  # the first two jobs are past the horizon now
    with store.read() as conn:
        step = observer.incremental(conn, now=later)
        full = observe.observe(conn, now=later)
    assert step.observed.jobs == full.jobs
    assert {older_in_flight, recent} == set(full.jobs.by_device)
    assert frozenset({old}) == step.changes.devices
    kept = first.observed.jobs.by_device
    assert all(step.observed.jobs.by_device[i] is kept[i] for i in (older_in_flight, recent))
    with store.read() as conn:  # nothing more leaves: nothing changes
        assert frozenset() == observer.incremental(conn, now=later).changes.devices
