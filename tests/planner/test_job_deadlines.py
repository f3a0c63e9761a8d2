"""Run deadlines of started jobs (docs/jobs.md): the rule, time-outs in the plan, the device
planned again, retried scans, and what `explain` says about a device's jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.core import jobs
from controller.core.explain import explain
from controller.core.jobs import EndReason, ScriptPayload
from controller.core.observed import JobKind, JobState
from controller.core.plan import SCAN_RETRY_AFTER, plan
from controller.kinds.notifications import AlertSeverity, EventType
from controller.kinds.windows import RebootOption
from controller.testing.fleets import SUNDAY_OPEN, desired, device, job, observed, scan

OCCURRENCE = "2026-11-29T01:00Z"  # the weekly window's occurrence open at SUNDAY_OPEN
STARTED = (JobState.ACKED, JobState.DOWNLOADING, JobState.INSTALLING, JobState.REBOOTING)


def script(minutes: int) -> ScriptPayload:
    return ScriptPayload("s", "bash", "true", minutes * 60, (0,))


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        pytest.param(JobKind.SCAN, {}, timedelta(hours=2), id="scan"),
        pytest.param(JobKind.SCRIPT, {"scripts": (script(5),)}, timedelta(minutes=35), id="script"),
        pytest.param(
            JobKind.INSTALL,
            {"window_duration": timedelta(hours=4), "reboot": RebootOption.IF_REQUIRED},
            timedelta(hours=5),
            id="install-window-reboot-grace",
        ),
        pytest.param(
            JobKind.INSTALL,
            {
                "window_duration": timedelta(hours=4),
                "reboot": RebootOption.NEVER,
                "scripts": (script(10), None, script(5)),
            },
            timedelta(hours=4, minutes=45),
            id="install-scripts-no-reboot",
        ),
    ],
)
def test_run_timeout_rule(kind: JobKind, options: dict[str, object], expected: timedelta) -> None:
    """The run timeout follows the kind, the window's duration, scripts and the reboot option."""
    assert expected == jobs.run_timeout(kind, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "fields", "expected"),
    [
        pytest.param(
            JobState.INSTALLING,
            {"started_at": SUNDAY_OPEN, "run_timeout": timedelta(hours=5)},
            SUNDAY_OPEN + timedelta(hours=5),
            id="started-with-timeout",
        ),
        pytest.param(
            JobState.ACKED,
            {"started_at": None},
            SUNDAY_OPEN - timedelta(minutes=20) + jobs.DEFAULT_RUN_TIMEOUTS[JobKind.INSTALL],
            id="legacy-no-start-no-timeout",
        ),
        pytest.param(JobState.DELIVERED, {}, None, id="not-started"),
        pytest.param(JobState.SUCCEEDED, {"started_at": SUNDAY_OPEN}, None, id="finished"),
    ],
)
def test_run_deadline(state: JobState, fields: dict[str, object], expected: object) -> None:
    """Started jobs count from their start (else their last update); others have none."""
    assert expected == jobs.run_deadline(job("i-1", device("w1"), state=state, **fields))


@pytest.mark.parametrize("state", STARTED, ids=[s.value for s in STARTED])
def test_a_stuck_install_times_out_and_frees_the_device(state: JobState) -> None:
    """A started install past its run deadline fails (timed-out), raises a critical alert
    naming the device, and the device gets a verifying scan at once."""
    dev = device("w1")
    stuck = job(
        "i-1",
        dev,
        state=state,
        patches=("KB-SEC",),
        occurrence=OCCURRENCE,
        started_at=SUNDAY_OPEN - timedelta(hours=6),
        run_timeout=timedelta(hours=5),
    )
    result = plan(desired(), observed((dev, scan("KB-SEC")), jobs=(stuck,)), now=SUNDAY_OPEN)
    alerts = [a for a in result.alerts if a.type is EventType.JOB_TIMED_OUT]
    assert ("i-1",) == result.time_out
    assert [("JobTimedOut:i-1", AlertSeverity.CRITICAL, "id-w1")] == [
        (a.key, a.severity, a.device_id) for a in alerts
    ]
    assert f"on w1 stopped in state {state.value}" in alerts[0].message
    assert [(JobKind.SCAN, "after:i-1")] == [(j.kind, j.occurrence) for j in result.issue]


def test_a_started_install_within_its_deadline_blocks_the_device() -> None:
    """Until its run deadline, a started install keeps the device busy: nothing is issued."""
    dev = device("w1")
    running = job(
        "i-1",
        dev,
        state=JobState.INSTALLING,
        patches=("KB-SEC",),
        started_at=SUNDAY_OPEN - timedelta(hours=4),
        run_timeout=timedelta(hours=5),
    )
    result = plan(desired(), observed((dev, scan("KB-SEC")), jobs=(running,)), now=SUNDAY_OPEN)
    timed_out = [a for a in result.alerts if a.type is EventType.JOB_TIMED_OUT]
    assert ((), (), []) == (result.time_out, result.issue, timed_out)


def test_after_a_time_out_the_device_is_installed_in_the_next_occurrence() -> None:
    """The timed-out patches count as attempted in their occurrence and install in the next."""
    dev = device("w1")
    timed_out = job(
        "i-1",
        dev,
        state=JobState.FAILED,
        patches=("KB-SEC",),
        occurrence=OCCURRENCE,
        end_reason=EndReason.TIMED_OUT,
    )
    fresh = scan("KB-SEC", age=timedelta(minutes=1))
    same = plan(desired(), observed((dev, fresh), jobs=(timed_out,)), now=SUNDAY_OPEN)
    next_week = SUNDAY_OPEN + timedelta(days=7)
    later = plan(
        desired(),
        observed((device("w1", now=next_week), scan("KB-SEC", now=next_week)), jobs=(timed_out,)),
        now=next_week,
    )
    assert [] == [j.id for j in same.issue if j.kind is JobKind.INSTALL]
    assert [("KB-SEC",)] == [j.patch_ids for j in later.issue if j.kind is JobKind.INSTALL]


@pytest.mark.parametrize(
    ("state", "end_reason", "ended_ago", "retried"),
    [
        pytest.param(JobState.ACKED, None, None, True, id="stuck-times-out-and-retries"),
        pytest.param(JobState.EXPIRED, EndReason.NO_AGENT, timedelta(0), True, id="expired"),
        pytest.param(JobState.FAILED, None, timedelta(minutes=10), False, id="agent-failed-now"),
        pytest.param(JobState.FAILED, None, SCAN_RETRY_AFTER, True, id="agent-failed-retry-after"),
    ],
)
def test_a_due_scan_that_ended_without_a_scan_is_retried(
    state: JobState, end_reason: str | None, ended_ago: timedelta | None, retried: bool
) -> None:
    """A due scan whose job timed out, expired or failed is retried under a new occasion."""
    now = SUNDAY_OPEN - timedelta(days=3)  # no window open: only scans
    dev = device("w1", now=now)
    last = scan(age=timedelta(hours=25), now=now)
    due = "due:" + f"{last.scanned_at:%Y-%m-%dT%H:%MZ}"
    updated = now - (ended_ago if ended_ago is not None else timedelta(hours=3))
    previous = job(
        jobs.job_id(dev.id, JobKind.SCAN, (), due),
        dev,
        kind=JobKind.SCAN,
        state=state,
        window=None,
        occurrence=due,
        created=updated,
        started_at=updated,
        end_reason=end_reason,
    )
    result = plan(desired(), observed((dev, last), jobs=(previous,)), now=now)
    expected = [f"retry:{previous.id}"] if retried else []
    assert expected == [j.occurrence for j in result.issue]


def test_every_scan_issued_carries_its_run_timeout() -> None:
    """Issued jobs carry the run timeout the store keeps and the deadline rule uses."""
    dev = device("w1")
    result = plan(desired(), observed((dev, scan("KB-SEC"))), now=SUNDAY_OPEN)
    assert [(JobKind.INSTALL, timedelta(hours=5))] == [
        (j.kind, j.run_timeout) for j in result.issue
    ]


def verdict_of(jobs_of_device: tuple[object, ...], *, online: bool = True) -> str:
    dev = device("w1", online=online)
    result = explain(
        desired(),
        observed((dev, scan("KB-SEC")), jobs=jobs_of_device),  # type: ignore[arg-type]
        dev,
        now=SUNDAY_OPEN,
    )
    return result.patches[0].verdict


W1 = device("w1")
EXPLAIN_CASES = [
    ("no-job", (), "will be installed now, in PatchWindow acme/weekly"),
    (
        "installing-within-deadline",
        (job("i-1", W1, state=JobState.INSTALLING, patches=("KB-SEC",)),),
        "being installed by job i-1 (installing)",
    ),
    (
        "stuck-install-of-the-patch",
        (
            job(
                "i-1",
                W1,
                state=JobState.INSTALLING,
                patches=("KB-SEC",),
                started_at=SUNDAY_OPEN - timedelta(hours=9),
            ),
        ),
        "its install job i-1 is overdue (still installing); will be installed in PatchWindow "
        "acme/weekly at 2026-12-06 02:00 Europe/Berlin (01:00Z)",
    ),
    (
        "stuck-scan-blocks",
        (
            job(
                "s-1",
                W1,
                kind=JobKind.SCAN,
                state=JobState.ACKED,
                window=None,
                started_at=SUNDAY_OPEN - timedelta(hours=3),
            ),
        ),
        "blocked by overdue scan job s-1 until the next reconcile ends it",
    ),
    (
        "running-scan-blocks",
        (job("s-1", W1, kind=JobKind.SCAN, state=JobState.PENDING, window=None),),
        "waits for scan job s-1 (pending) to finish",
    ),
    (
        "attempted-in-this-occurrence",
        (
            job(
                "i-1",
                W1,
                state=JobState.FAILED,
                patches=("KB-SEC",),
                end_reason=EndReason.TIMED_OUT,
            ),
        ),
        "already attempted in this occurrence (job i-1, failed); will be installed in "
        "PatchWindow acme/weekly at 2026-12-06 02:00 Europe/Berlin (01:00Z)",
    ),
]


@pytest.mark.parametrize(
    ("ledger", "expected"), [c[1:] for c in EXPLAIN_CASES], ids=[c[0] for c in EXPLAIN_CASES]
)
def test_explain_follows_the_device_jobs(ledger: tuple[object, ...], expected: str) -> None:
    """Explain says "now" only when nothing blocks; a stuck job is named, never hidden."""
    verdict = verdict_of(ledger)
    assert expected in verdict
    if ledger:
        assert "will be installed now" not in verdict


def test_explain_lists_overdue_jobs() -> None:
    """The explanation names an overdue job with its state and the deadline it missed."""
    dev = device("w1")
    stuck = job(
        "i-1",
        dev,
        state=JobState.ACKED,
        patches=("KB-SEC",),
        started_at=SUNDAY_OPEN - timedelta(hours=6),
        run_timeout=timedelta(hours=5),
    )
    result = explain(
        desired(), observed((dev, scan("KB-SEC")), jobs=(stuck,)), dev, now=SUNDAY_OPEN
    )
    assert (
        "install job i-1 is overdue (timed-out: still acked past its deadline 2026-11-29 00:30Z);"
        " the next reconcile ends it and plans the device again",
    ) == result.jobs


def test_explain_says_an_offline_device_installs_when_it_checks_in() -> None:
    """The planner installs only on online devices, and explain says so."""
    assert verdict_of((), online=False).endswith("when the device checks in (it is offline)")
