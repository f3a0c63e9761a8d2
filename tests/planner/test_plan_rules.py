"""The decision rules of DESIGN.md section 3, one table row per case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.compliance import ComplianceState, PatchState
from controller.core.observed import JobKind, JobState, PatchResult
from controller.core.plan import Plan, plan
from controller.kinds.common import OsFamily
from controller.kinds.notifications import AlertSeverity, EventType
from controller.testing.fleets import SUNDAY_OPEN, desired, device, job, observed, scan

LINUX = OsFamily.LINUX

APPROVE_USN1 = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: usn, tenant: acme/retail}
spec: {patches: [USN-1-1, KB-BAD, KB-BUG], targets: {groups: [linux, windows]}, reason: hot fix, expires: EXPIRES}
"""
WHITELIST_USN2 = """\
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: ids, tenant: acme}
spec: {targets: {groups: [linux]}, patches: [{id: USN-2-1}]}
"""


def installs(result: Plan) -> dict[str, tuple[str, ...]]:
    return {j.device_id: j.patch_ids for j in result.issue if j.kind is JobKind.INSTALL}


INSTALL_CASES = [
    (
        "windows-auto-security-not-bugfix",
        "",
        device("w1"),
        scan("KB-SEC", "KB-CRIT", "KB-BUG", "KB-NEW", "KB-BAD", "KB-OLD"),
        SUNDAY_OPEN,
        {"id-w1": ("KB-CRIT", "KB-SEC")},
    ),
    (
        "linux-whitelist-filter-approves-nothing",
        "",
        device("l1", os=LINUX),
        scan("USN-1-1"),
        SUNDAY_OPEN,
        {},
    ),
    (
        "linux-explicit-approval",
        APPROVE_USN1.replace("EXPIRES", "2027-01-31"),
        device("l1", os=LINUX),
        scan("USN-1-1", "USN-2-1"),
        SUNDAY_OPEN,
        {"id-l1": ("USN-1-1",)},
    ),
    (
        "linux-whitelist-explicit-id",
        WHITELIST_USN2,
        device("l1", os=LINUX),
        scan("USN-1-1", "USN-2-1"),
        SUNDAY_OPEN,
        {"id-l1": ("USN-2-1",)},
    ),
    (
        "expired-approval-approves-nothing",
        APPROVE_USN1.replace("EXPIRES", "2026-11-28"),
        device("l1", os=LINUX),
        scan("USN-1-1"),
        SUNDAY_OPEN,
        {},
    ),
    (
        "approval-holds-on-its-last-day",
        APPROVE_USN1.replace("EXPIRES", "2026-11-29"),
        device("l1", os=LINUX),
        scan("USN-1-1"),
        SUNDAY_OPEN,
        {"id-l1": ("USN-1-1",)},
    ),
    (
        "rejected-patch-never-installed-even-if-approved",
        APPROVE_USN1.replace("EXPIRES", "2027-01-31"),
        device("w1"),
        scan("KB-BAD", "KB-BUG"),
        SUNDAY_OPEN,
        {"id-w1": ("KB-BUG",)},
    ),
    (
        "gateway-never-patched",
        "",
        device("gw", os=LINUX, role="gateway"),
        scan("USN-1-1"),
        SUNDAY_OPEN,
        {},
    ),
    ("offline-device-gets-no-job", "", device("w1", online=False), scan("KB-SEC"), SUNDAY_OPEN, {}),
    (
        "after-cutoff",
        "",
        device("w1", now=SUNDAY_OPEN + timedelta(hours=2, minutes=35)),
        scan("KB-SEC", now=SUNDAY_OPEN + timedelta(hours=2, minutes=35)),
        SUNDAY_OPEN + timedelta(hours=2, minutes=35),
        {},
    ),
    (
        "just-before-cutoff",
        "",
        device("w1", now=SUNDAY_OPEN + timedelta(hours=2, minutes=29)),
        scan("KB-SEC", now=SUNDAY_OPEN + timedelta(hours=2, minutes=29)),
        SUNDAY_OPEN + timedelta(hours=2, minutes=29),
        {"id-w1": ("KB-SEC",)},
    ),
    (
        "window-closed",
        "",
        device("w1", now=SUNDAY_OPEN - timedelta(days=1)),
        scan("KB-SEC", now=SUNDAY_OPEN - timedelta(days=1)),
        SUNDAY_OPEN - timedelta(days=1),
        {},
    ),
    ("suspended-window", "SUSPEND", device("w1"), scan("KB-SEC"), SUNDAY_OPEN, {}),
]


@pytest.mark.parametrize(
    ("extra", "dev", "last_scan", "now", "expected"),
    [case[1:] for case in INSTALL_CASES],
    ids=[case[0] for case in INSTALL_CASES],
)
def test_install_jobs_follow_the_rules(extra, dev, last_scan, now, expected) -> None:
    """Installs carry exactly the installable patches, only for online devices in an open window."""
    policy = desired("" if extra == "SUSPEND" else extra, suspend=extra == "SUSPEND")
    assert expected == installs(plan(policy, observed((dev, last_scan)), now=now))


def test_offline_device_in_window_raises_an_alert() -> None:
    """An offline device with approved patches in an open window raises AgentOfflineInWindow."""
    dev = device("w1", online=False)
    result = plan(desired(), observed((dev, scan("KB-SEC"))), now=SUNDAY_OPEN)
    assert [EventType.AGENT_OFFLINE_IN_WINDOW] == [a.type for a in result.alerts]


def test_planning_twice_issues_nothing_new() -> None:
    """Once the first plan's jobs are in the ledger, the same input plans no new job."""
    dev = device("w1")
    first = plan(desired(), observed((dev, scan("KB-SEC"))), now=SUNDAY_OPEN)
    ledger = tuple(
        job(j.id, dev, kind=j.kind, patches=j.patch_ids, window=j.window, occurrence=j.occurrence)
        for j in first.issue
    )
    second = plan(desired(), observed((dev, scan("KB-SEC")), jobs=ledger), now=SUNDAY_OPEN)
    assert (1, ()) == (len(first.issue), second.issue)


def test_job_ids_are_deterministic() -> None:
    """The same input yields the same job ids."""
    dev = device("w1")
    ids = [
        [j.id for j in plan(desired(), observed((dev, scan("KB-SEC"))), now=SUNDAY_OPEN).issue]
        for _ in range(2)
    ]
    assert ids[0] == ids[1]


def test_one_attempt_per_patch_and_occurrence() -> None:
    """A patch that failed in this occurrence is not retried until the next one."""
    dev = device("w1")
    failed = job(
        "install-1",
        dev,
        state=JobState.FAILED,
        patches=("KB-SEC",),
        results={"KB-SEC": PatchResult.FAILED},
    )
    now = SUNDAY_OPEN
    result = plan(
        desired(),
        observed((dev, scan("KB-SEC", "KB-CRIT", age=timedelta(minutes=1))), jobs=(failed,)),
        now=now,
    )
    assert {"id-w1": ("KB-CRIT",)} == installs(result)
    next_week = now + timedelta(days=7)
    dev_next = device("w1", now=next_week)
    later = plan(
        desired(),
        observed((dev_next, scan("KB-SEC", now=next_week)), jobs=(failed,)),
        now=next_week,
    )
    assert {"id-w1": ("KB-SEC",)} == installs(later)


def test_no_install_while_a_job_is_in_flight() -> None:
    """A device with a job in flight gets no new job."""
    dev = device("w1")
    running = job(
        "scan-1", dev, kind=JobKind.SCAN, state=JobState.ACKED, window=None, occurrence="initial"
    )
    assert {} == installs(
        plan(desired(), observed((dev, scan("KB-SEC")), jobs=(running,)), now=SUNDAY_OPEN)
    )


@pytest.mark.parametrize(
    ("concurrent", "failures", "failed_devices", "expected"),
    [
        ("3", "100%", 0, 3),
        ("30%", "100%", 0, 3),
        ("100%", "1", 2, 0),
        ("100%", "2", 2, 10),
        ("100%", "10%", 1, 10),
    ],
    ids=[
        "max-concurrent-count",
        "max-concurrent-percent",
        "max-failures-exceeded",
        "max-failures-reached-not-exceeded",
        "max-failures-percent",
    ],
)
def test_rollout_limits(concurrent: str, failures: str, failed_devices: int, expected: int) -> None:
    """maxConcurrent caps installs in flight; maxFailures stops new installs once exceeded."""
    devices = [device(f"w{i:02}") for i in range(10)]
    failed_jobs = tuple(
        job(
            f"install-f{i}",
            devices[i],
            state=JobState.FAILED,
            patches=("KB-SEC",),
            results={"KB-SEC": PatchResult.FAILED},
        )
        for i in range(failed_devices)
    )
    pairs = [(d, scan("KB-SEC", "KB-CRIT", age=timedelta(minutes=1))) for d in devices]
    result = plan(
        desired(concurrent=concurrent, failures=failures),
        observed(*pairs, jobs=failed_jobs),
        now=SUNDAY_OPEN,
    )
    assert expected == len(installs(result))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 0),  # 01:30 CET: before the window
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), 1),  # 02:00 does not exist: opens 03:00 CEST
        (datetime(2026, 3, 29, 4, 5, tzinfo=UTC), 0),  # 06:05 CEST: past the 1h cutoff
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 1),  # 02:30 CEST, first of the repeated hour
        (datetime(2026, 10, 25, 2, 30, tzinfo=UTC), 1),  # 03:30 CET, still before the cutoff
        (datetime(2026, 10, 25, 3, 5, tzinfo=UTC), 0),  # 04:05 CET: cutoff passed (4h real time)
    ],
    ids=[
        "spring-before",
        "spring-open",
        "spring-cutoff",
        "autumn-open",
        "autumn-still-open",
        "autumn-cutoff",
    ],
)
def test_dst_weeks_in_berlin(now: datetime, expected: int) -> None:
    """The Sunday window follows Europe/Berlin through both DST changes."""
    dev = device("w1", now=now)
    assert expected == len(
        installs(plan(desired(), observed((dev, scan("KB-ANCIENT", now=now))), now=now))
    )


SCAN_CASES = [
    ("initial-after-enrolment", None, (), "initial"),
    ("fresh-scan-nothing-due", scan(age=timedelta(hours=1)), (), None),
    ("stale-scan-due", scan(age=timedelta(hours=25)), (), "due:2026-11-28T00:30Z"),
    ("after-install", scan(age=timedelta(hours=1)), ("install-done",), "after:install-done"),
]


@pytest.mark.parametrize(
    ("last_scan", "ledger", "occasion"), [c[1:] for c in SCAN_CASES], ids=[c[0] for c in SCAN_CASES]
)
def test_scan_jobs(last_scan, ledger, occasion) -> None:
    """Scans run after enrolment, when the last one is older than `every`, and after installs."""
    dev = device("w1", now=SUNDAY_OPEN - timedelta(days=3))  # outside the window: only scans
    now = SUNDAY_OPEN - timedelta(days=3)
    if last_scan is not None:
        last_scan = scan(age=SUNDAY_OPEN - last_scan.scanned_at, now=now)
    jobs = tuple(
        job(
            j,
            dev,
            state=JobState.SUCCEEDED,
            patches=("KB-SEC",),
            created=now - timedelta(minutes=30),
        )
        for j in ledger
    )
    result = plan(desired(), observed((dev, last_scan), jobs=jobs), now=now)
    scans = [j.occurrence for j in result.issue if j.kind is JobKind.SCAN]
    expected = (
        [] if occasion is None else [occasion.replace("2026-11-28T00:30Z", "2026-11-25T00:30Z")]
    )
    assert expected == scans
    if occasion:
        assert [EventType.INITIATE] == [
            a.type for a in result.alerts if a.type is EventType.INITIATE
        ]


COMPLIANCE_CASES = [
    ("compliant", scan(installed=("KB-SEC", "KB-CRIT")), (), ComplianceState.COMPLIANT, ()),
    (
        "missing",
        scan("KB-CRIT", installed=("KB-SEC",)),
        (),
        ComplianceState.NON_COMPLIANT,
        (("KB-CRIT", PatchState.MISSING),),
    ),
    ("grace-period-not-counted", scan("KB-NEW"), (), ComplianceState.COMPLIANT, ()),
    ("bugfix-not-required", scan("KB-BUG"), (), ComplianceState.COMPLIANT, ()),
    ("superseded-not-applicable", scan("KB-OLD"), (), ComplianceState.COMPLIANT, ()),
    (
        "installed-excluded-blocks",
        scan(installed=("KB-BAD",)),
        (),
        ComplianceState.NON_COMPLIANT,
        (("KB-BAD", PatchState.INSTALLED_REJECTED),),
    ),
    ("stale-scan-unknown", scan("KB-CRIT", age=timedelta(days=8)), (), ComplianceState.UNKNOWN, ()),
    (
        "failed-install",
        scan("KB-SEC"),
        ("failed",),
        ComplianceState.NON_COMPLIANT,
        (("KB-SEC", PatchState.FAILED),),
    ),
    (
        "pending-reboot",
        scan(installed=("KB-SEC",), reboot=True),
        ("reboot",),
        ComplianceState.NON_COMPLIANT,
        (("KB-SEC", PatchState.INSTALLED_PENDING_REBOOT),),
    ),
]


@pytest.mark.parametrize(
    ("last_scan", "ledger", "state", "findings"),
    [c[1:] for c in COMPLIANCE_CASES],
    ids=[c[0] for c in COMPLIANCE_CASES],
)
def test_compliance_states(last_scan, ledger, state, findings) -> None:
    """Per-patch states and the device verdict follow DESIGN.md 3.6."""
    dev = device("w1")
    jobs = []
    if "failed" in ledger:
        jobs.append(
            job(
                "i-f",
                dev,
                state=JobState.FAILED,
                patches=("KB-SEC",),
                results={"KB-SEC": PatchResult.FAILED},
            )
        )
    if "reboot" in ledger:
        jobs.append(
            job(
                "i-r",
                dev,
                state=JobState.SUCCEEDED,
                patches=("KB-SEC",),
                results={"KB-SEC": PatchResult.INSTALLED},
                reboot_required=True,
            )
        )
    result = plan(desired(), observed((dev, last_scan), jobs=tuple(jobs)), now=SUNDAY_OPEN)
    (record,) = result.compliance
    assert (state, findings) == (record.state, record.findings)


def test_failed_install_raises_a_critical_alert_with_the_reason() -> None:
    """A failed patch raises InstallFailed, critical, carrying the agent's reason."""
    dev = device("w1")
    failed = job(
        "i-1",
        dev,
        state=JobState.FAILED,
        patches=("KB-SEC",),
        results={"KB-SEC": PatchResult.FAILED},
        reasons={"KB-SEC": "0x80070005 access denied"},
    )
    result = plan(
        desired(), observed((dev, scan(age=timedelta(minutes=1))), jobs=(failed,)), now=SUNDAY_OPEN
    )
    (alert,) = [a for a in result.alerts if a.type is EventType.INSTALL_FAILED]
    assert (AlertSeverity.CRITICAL, "KB-SEC failed to install on w1: 0x80070005 access denied") == (
        alert.severity,
        alert.message,
    )


def test_reboot_pending_alert_after_install() -> None:
    """A scan after an install that still needs a reboot raises the reboot-pending alert."""
    dev = device("w1")
    done = job(
        "i-1",
        dev,
        state=JobState.SUCCEEDED,
        patches=("KB-SEC",),
        results={"KB-SEC": PatchResult.INSTALLED},
        reboot_required=True,
    )
    result = plan(
        desired(),
        observed(
            (dev, scan(installed=("KB-SEC",), reboot=True, age=timedelta(minutes=5))), jobs=(done,)
        ),
        now=SUNDAY_OPEN,
    )
    messages = [a.message for a in result.alerts if a.type is EventType.REBOOT_PENDING]
    assert ["w1: Patching completed and need to reboot."] == messages


def test_jobs_not_picked_up_expire() -> None:
    """A job still pending at its deadline expires (no-agent) and raises an alert."""
    dev = device("w1", online=False)
    stale = job(
        "i-1",
        dev,
        state=JobState.DELIVERED,
        patches=("KB-SEC",),
        deadline=SUNDAY_OPEN - timedelta(minutes=1),
    )
    result = plan(desired(), observed((dev, scan("KB-SEC")), jobs=(stale,)), now=SUNDAY_OPEN)
    assert (("i-1",), ["JobExpired:i-1"]) == (
        result.expire,
        [a.key for a in result.alerts if a.type is EventType.JOB_EXPIRED],
    )


def test_revoked_approval_cancels_pending_installs() -> None:
    """An install the agent has not taken is cancelled when its patch is no longer approved."""
    dev = device("l1", os=LINUX)
    pending = job("i-1", dev, state=JobState.PENDING, patches=("USN-1-1",))
    result = plan(desired(), observed((dev, scan("USN-1-1")), jobs=(pending,)), now=SUNDAY_OPEN)
    assert ("i-1",) == result.cancel


def test_started_installs_are_never_cancelled() -> None:
    """An install the agent already acknowledged runs to its end."""
    dev = device("l1", os=LINUX)
    running = job("i-1", dev, state=JobState.INSTALLING, patches=("USN-1-1",))
    assert (
        ()
        == plan(
            desired(), observed((dev, scan("USN-1-1")), jobs=(running,)), now=SUNDAY_OPEN
        ).cancel
    )


def test_pending_approvals_count_required_unapproved_patches() -> None:
    """Required but unapproved missing patches count as pending approval."""
    dev = device("l1", os=LINUX)
    result = plan(desired(), observed((dev, scan("USN-1-1", "USN-2-1"))), now=SUNDAY_OPEN)
    assert 2 == result.pending_approvals
