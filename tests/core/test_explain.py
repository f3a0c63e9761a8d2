"""`controller.core.explain`: the per-patch verdict sentences, the device header and the job
sentences, on the planner tests' policy (`controller.testing.fleets`) at the weekly window's opening.

Job deadlines and the blocking of installs by jobs in flight are covered in
`tests/planner/test_job_deadlines.py`; this module covers the rules of `_verdict` one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from controller.core.explain import DeviceExplanation, explain
from controller.core.observed import DeviceView, JobState, PatchResult, ScanView
from controller.kinds.common import OsFamily
from controller.testing.fleets import SUNDAY_OPEN, desired, device, job, observed, scan

AUTO = "auto: PatchWindow acme/weekly with Whitelist acme/filters (filter)"
NOW_TEXT = (
    "now, in PatchWindow acme/weekly (installs start until 2026-11-29 05:00 Europe/Berlin (04:00Z))"
)
NEXT_TEXT = "in PatchWindow acme/weekly at 2026-12-06 02:00 Europe/Berlin (01:00Z)"
W1 = device("w1")


def explained(
    view: DeviceView,
    seen: ScanView | None,
    *,
    jobs: tuple[object, ...] = (),
    extra: str = "",
    at: datetime = SUNDAY_OPEN,
) -> DeviceExplanation:
    return explain(desired(extra), observed((view, seen), jobs=jobs), view, now=at)  # type: ignore[arg-type]


VERDICT_CASES = [
    pytest.param(
        "KB-SEC",
        scan("KB-SEC"),
        f"required by Baseline acme/win; approved by {AUTO}; will be installed {NOW_TEXT}",
        id="required-approved-now",
    ),
    pytest.param(
        "KB-BUG",
        scan("KB-BUG"),
        "not required; waiting for approval (no Approval or Whitelist id covers it)",
        id="bugfix-waits-for-approval",
    ),
    pytest.param(
        "KB-NEW",
        scan("KB-NEW"),
        "not required; waiting for approval (no Approval or Whitelist id covers it)",
        id="within-grace-and-auto-delay",
    ),
    pytest.param(
        "KB-BAD", scan("KB-BAD"), "never installed: excluded by Baseline acme/win", id="excluded"
    ),
    pytest.param(
        "KB-OLD", scan("KB-OLD"), "not applicable: superseded by a newer patch", id="superseded"
    ),
    pytest.param(
        "USN-1-1",
        scan("USN-1-1"),
        "not applicable: the patch is for another operating system",
        id="other-os",
    ),
    pytest.param(
        "KB-CRIT",
        scan(installed=("KB-CRIT",)),
        "installed; required by Baseline acme/win",
        id="installed",
    ),
    pytest.param(
        "KB-BUG",
        scan(installed=("KB-BUG",)),
        "installed; not required",
        id="installed-not-required",
    ),
    pytest.param(
        "KB-BAD",
        scan(installed=("KB-BAD",)),
        "installed but rejected by Baseline acme/win",
        id="installed-rejected",
    ),
]


@pytest.mark.parametrize(("patch_id", "seen", "expected"), VERDICT_CASES)
def test_verdict(patch_id: str, seen: ScanView, expected: str) -> None:
    """One sentence per rule: rejected, superseded, other OS, approval, then when it installs."""
    result = explained(W1, seen)
    assert [(patch_id, expected)] == [(p.patch_id, p.verdict) for p in result.patches]


def test_header() -> None:
    """Online state, scan time, the policies that target the device and the open window."""
    result = explained(W1, scan("KB-SEC"))
    expected = (
        True,
        SUNDAY_OPEN - timedelta(hours=1),
        ("Baseline acme/win", "Whitelist acme/filters", "PatchWindow acme/weekly"),
        NOW_TEXT,
        (),
    )
    assert expected == (
        result.online,
        result.scanned_at,
        result.policies,
        result.next_window,
        result.jobs,
    )


def test_patches_in_scan_order_missing_then_installed() -> None:
    """Missing patches first, then installed ones, each in the scan's order, with their status."""
    result = explained(W1, scan("KB-BUG", "KB-SEC", installed=("KB-CRIT",)))
    assert [("KB-BUG", "missing"), ("KB-SEC", "missing"), ("KB-CRIT", "installed")] == [
        (p.patch_id, p.status) for p in result.patches
    ]


def test_no_scan_no_patches() -> None:
    """A device never scanned has nothing to explain, but its policies are listed."""
    result = explained(W1, None)
    assert (None, (), 3) == (result.scanned_at, result.patches, len(result.policies))


def test_after_the_window_names_the_next_occurrence() -> None:
    """Outside an occurrence, an approved patch installs at the next one, in the window's zone."""
    later = SUNDAY_OPEN + timedelta(days=1)
    view = device("w1", now=later)
    result = explained(view, scan("KB-SEC", now=later), at=later)
    expected = (
        NEXT_TEXT,
        f"required by Baseline acme/win; approved by {AUTO}; will be installed {NEXT_TEXT}",
    )
    assert expected == (result.next_window, result.patches[0].verdict)


def test_failed_install_names_the_job_and_reason() -> None:
    """A patch whose install failed in this occurrence says so, with the agent's reason."""
    failed = job(
        "i-1",
        W1,
        state=JobState.FAILED,
        patches=("KB-SEC",),
        results={"KB-SEC": PatchResult.FAILED},
        reasons={"KB-SEC": "0x80070005"},
    )
    result = explained(W1, scan("KB-SEC"), jobs=(failed,))
    expected = (
        "failed",
        "failed: job i-1 reported 0x80070005; required by Baseline acme/win; approved by "
        f"{AUTO}; already attempted in this occurrence (job i-1, failed); will be installed {NEXT_TEXT}",
    )
    assert expected == (result.patches[0].state, result.patches[0].verdict)


def test_compliance_states() -> None:
    """Each patch carries the planner's compliance state; None where no baseline gives one."""
    result = explained(W1, scan("KB-SEC", "KB-BUG", "KB-BAD", installed=("KB-CRIT",)))
    assert {"KB-SEC": "missing", "KB-BUG": None, "KB-BAD": None, "KB-CRIT": "installed"} == {
        p.patch_id: p.state for p in result.patches
    }


def test_required_superseded_patch_state_is_not_applicable() -> None:
    """A missing patch a baseline requires but a newer one supersedes is `not-applicable`."""
    result = explained(W1, scan("KB-OLD"))
    assert "not-applicable" == result.patches[0].state


def test_linux_filters_do_not_approve() -> None:
    """On Linux a whitelist filter approves nothing: the required patch waits for approval."""
    view = device("l1", os=OsFamily.LINUX)
    result = explained(view, scan("USN-1-1"))
    assert (
        "required by Baseline acme/lin; waiting for approval (no Approval or Whitelist id covers it)"
        == (result.patches[0].verdict)
    )


APPROVE_X = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: ok, tenant: acme/retail}
spec: {patches: [KB-BUG], targets: {devices: [x]}, reason: needed}
"""


def test_no_window_targets_the_device() -> None:
    """An approved patch on a device no PatchWindow targets is never scheduled, and explain says so."""
    view = device("x", os=None)
    result = explained(view, scan("KB-BUG"), extra=APPROVE_X)
    expected = (
        ("Approval acme/retail/ok",),
        None,
        "no patch window targets this device",
        "not required; approved by Approval acme/retail/ok; no patch window targets this device",
    )
    assert expected == (
        result.policies,
        result.next_window,
        result.unscheduled,
        result.patches[0].verdict,
    )


JOB_CASES = [
    pytest.param(
        job(
            "i-2",
            W1,
            state=JobState.DELIVERED,
            patches=("KB-SEC",),
            deadline=SUNDAY_OPEN + timedelta(hours=1),
        ),
        "install job i-2 is delivered, waiting for the agent until 2026-11-29 02:30Z",
        id="waiting-for-pickup",
    ),
    pytest.param(
        job("i-3", W1, state=JobState.PENDING, patches=("KB-SEC",)),
        "install job i-3 is pending, waiting for the agent until no deadline",
        id="no-pickup-deadline",
    ),
    pytest.param(
        job(
            "i-4",
            W1,
            state=JobState.INSTALLING,
            patches=("KB-SEC",),
            started_at=SUNDAY_OPEN - timedelta(minutes=10),
            run_timeout=timedelta(hours=5),
        ),
        "install job i-4 is installing; it times out at 2026-11-29 06:20Z",
        id="started",
    ),
    pytest.param(
        job("i-5", W1, state=JobState.PENDING, patches=("KB-SEC",), deadline=SUNDAY_OPEN),
        "install job i-5 is overdue (no-agent: still pending past its deadline 2026-11-29 01:30Z);"
        " the next reconcile ends it and plans the device again",
        id="pickup-overdue",
    ),
]


@pytest.mark.parametrize(("ledger_job", "expected"), JOB_CASES)
def test_job_sentences(ledger_job: object, expected: str) -> None:
    """One sentence per unfinished job: its state and deadline, or why it is overdue."""
    assert (expected,) == explained(W1, scan("KB-SEC"), jobs=(ledger_job,)).jobs


def test_finished_jobs_are_not_listed() -> None:
    """Finished jobs within their deadlines say nothing in the job list."""
    done = job("i-6", W1, state=JobState.SUCCEEDED, patches=("KB-SEC",))
    assert () == explained(W1, scan(installed=("KB-SEC",)), jobs=(done,)).jobs


def test_a_gateway_is_never_patched() -> None:
    """A gateway a PatchWindow targets gets no install opportunity, and each patch says why."""
    view = device("gw", os=OsFamily.LINUX, role="gateway")
    approve = APPROVE_X.replace("KB-BUG", "USN-1-1").replace("[x]", "[gw]")
    result = explained(view, scan("USN-1-1"), extra=approve)
    expected = (
        True,
        None,
        "gateway: never patched",
        "required by Baseline acme/lin; approved by Approval acme/retail/ok; gateway: never patched",
    )
    assert expected == (
        "PatchWindow acme/weekly" in result.policies,
        result.next_window,
        result.unscheduled,
        result.patches[0].verdict,
    )


PAST_ONCE = """\
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: once, tenant: acme}
spec:
  targets: {devices: [x]}
  recurrence: {once: "2026-01-04T02:00:00"}
  timezone: UTC
  duration: 4h
"""


def test_a_past_window_has_no_occurrence_ahead() -> None:
    """A device whose only window is over is told so, not that no window targets it."""
    view = device("x", os=None)
    result = explained(view, scan("KB-BUG"), extra=APPROVE_X + "---\n" + PAST_ONCE)
    expected = (
        None,
        "no occurrence ahead in PatchWindow acme/once",
        "not required; approved by Approval acme/retail/ok; "
        "no occurrence ahead in PatchWindow acme/once",
    )
    assert expected == (result.next_window, result.unscheduled, result.patches[0].verdict)
