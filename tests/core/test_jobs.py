"""`controller.core.jobs`: deterministic job ids, run timeouts and the two deadlines (docs/jobs.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core import jobs
from controller.core.jobs import EndReason, ScriptPayload
from controller.core.observed import JobKind, JobState, JobView
from controller.kinds.windows import RebootOption

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def script(timeout_minutes: int) -> ScriptPayload:
    return ScriptPayload("prep", "powershell", "exit 0", timeout_minutes * 60, (0,))


def view(state: JobState, kind: JobKind = JobKind.INSTALL, **fields: object) -> JobView:
    return JobView(id="job-1", device_id="id-w1", kind=kind, state=state, **fields)  # type: ignore[arg-type]


# --- job ids -------------------------------------------------------------------------------


def test_job_id_is_pinned() -> None:
    """The id of a known input never changes between releases (stored ids are compared with it)."""
    actual = jobs.job_id("id-w1", JobKind.INSTALL, ("KB2", "KB1"), "acme/weekly@2026-11-29T01:00Z")
    assert "install-32ed35bd05c84970561c6ac1" == actual


def test_job_id_ignores_patch_order() -> None:
    """The patch set, not its order, makes the id."""
    first = jobs.job_id("id-w1", JobKind.INSTALL, ["KB1", "KB2"], "occ")
    second = jobs.job_id("id-w1", JobKind.INSTALL, ["KB2", "KB1"], "occ")
    assert first == second


@pytest.mark.parametrize(
    ("device", "kind", "patches", "occasion"),
    [
        pytest.param("id-w2", JobKind.INSTALL, ("KB1",), "occ", id="other-device"),
        pytest.param("id-w1", JobKind.SCRIPT, ("KB1",), "occ", id="other-kind"),
        pytest.param("id-w1", JobKind.INSTALL, ("KB1", "KB2"), "occ", id="other-patches"),
        pytest.param("id-w1", JobKind.INSTALL, ("KB1",), "occ2", id="other-occasion"),
    ],
)
def test_job_id_changes_with_each_part(
    device: str, kind: JobKind, patches: tuple[str, ...], occasion: str
) -> None:
    """Each of device, kind, patch set and occasion is part of what makes a job unique."""
    base = jobs.job_id("id-w1", JobKind.INSTALL, ("KB1",), "occ")
    assert base != jobs.job_id(device, kind, patches, occasion)


def test_job_id_fields_cannot_run_together() -> None:
    """A separator keeps `a`+`bc` apart from `ab`+`c` (no collision by concatenation)."""
    assert jobs.job_id("a", JobKind.SCAN, (), "bc") != jobs.job_id("ab", JobKind.SCAN, (), "c")


def test_job_id_shape() -> None:
    """`<kind>-<24 hex>`."""
    actual = jobs.job_id("id-w1", JobKind.SCAN, (), "initial")
    assert ("scan", 24) == (actual.split("-")[0], len(actual.split("-")[1]))
    assert set(actual.split("-")[1]) <= set("0123456789abcdef")


# --- run timeouts --------------------------------------------------------------------------

RUN_TIMEOUT_CASES = [
    pytest.param(JobKind.SCAN, {}, timedelta(hours=2), id="scan-2h"),
    pytest.param(
        JobKind.SCAN,
        {"window_duration": timedelta(hours=4), "scripts": (script(60),)},
        timedelta(hours=2),
        id="scan-ignores-window-and-scripts",
    ),
    pytest.param(
        JobKind.SCRIPT, {"scripts": (script(15),)}, timedelta(minutes=45), id="script-plus-30m"
    ),
    pytest.param(
        JobKind.INSTALL,
        {"window_duration": timedelta(hours=4)},
        timedelta(hours=5),
        id="install-window-reboot-grace",
    ),
    pytest.param(
        JobKind.INSTALL,
        {"window_duration": timedelta(hours=4), "reboot": RebootOption.NEVER},
        timedelta(hours=4, minutes=30),
        id="install-reboot-never",
    ),
    pytest.param(
        JobKind.INSTALL,
        {
            "window_duration": timedelta(hours=2),
            "reboot": RebootOption.ALWAYS,
            "scripts": (script(10), None, script(20)),
        },
        timedelta(hours=3, minutes=30),
        id="install-pre-post-scripts-none-skipped",
    ),
    pytest.param(JobKind.INSTALL, {}, timedelta(hours=1), id="install-no-window"),
]


@pytest.mark.parametrize(("kind", "options", "expected"), RUN_TIMEOUT_CASES)
def test_run_timeout(kind: JobKind, options: dict[str, object], expected: timedelta) -> None:
    """The rule of the module docstring, one row per part."""
    assert expected == jobs.run_timeout(kind, **options)  # type: ignore[arg-type]


def test_script_payload_timeout_in_seconds() -> None:
    """A payload keeps the script's timeout in whole seconds, which run_timeout reads."""
    assert timedelta(minutes=30, seconds=5) == jobs.run_timeout(
        JobKind.SCRIPT, scripts=(ScriptPayload("s", "bash", "true", 5, (0,)),)
    )


# --- deadlines -----------------------------------------------------------------------------

STARTED = NOW - timedelta(hours=1)

RUN_DEADLINE_CASES = [
    pytest.param(view(JobState.PENDING, created_at=STARTED), None, id="pending-not-started"),
    pytest.param(view(JobState.DELIVERED, created_at=STARTED), None, id="delivered-not-started"),
    pytest.param(
        view(JobState.SUCCEEDED, started_at=STARTED, run_timeout=timedelta(hours=1)),
        None,
        id="finished",
    ),
    pytest.param(
        view(JobState.INSTALLING, started_at=STARTED, run_timeout=timedelta(minutes=90)),
        STARTED + timedelta(minutes=90),
        id="own-run-timeout",
    ),
    pytest.param(
        view(JobState.ACKED, started_at=STARTED),
        STARTED + timedelta(hours=6),
        id="install-default-6h",
    ),
    pytest.param(
        view(JobState.ACKED, JobKind.SCAN, started_at=STARTED),
        STARTED + timedelta(hours=2),
        id="scan-default-2h",
    ),
    pytest.param(
        view(JobState.ACKED, JobKind.SCRIPT, started_at=STARTED),
        STARTED + timedelta(hours=2),
        id="script-default-2h",
    ),
    pytest.param(
        view(
            JobState.REBOOTING,
            created_at=STARTED - timedelta(hours=1),
            updated_at=STARTED,
            run_timeout=timedelta(hours=1),
        ),
        STARTED + timedelta(hours=1),
        id="no-start-counts-from-update",
    ),
    pytest.param(
        view(JobState.DOWNLOADING, created_at=STARTED, run_timeout=timedelta(hours=1)),
        STARTED + timedelta(hours=1),
        id="no-start-no-update-counts-from-creation",
    ),
    pytest.param(view(JobState.DOWNLOADING), None, id="no-instant-at-all"),
]


@pytest.mark.parametrize(("job", "expected"), RUN_DEADLINE_CASES)
def test_run_deadline(job: JobView, expected: datetime | None) -> None:
    """A started, unfinished job must finish by its start plus its run timeout."""
    assert expected == jobs.run_deadline(job)


ENDED_CASES = [
    pytest.param(
        view(JobState.PENDING, deadline=NOW),
        (JobState.EXPIRED, EndReason.NO_AGENT),
        id="pickup-deadline-reached",
    ),
    pytest.param(
        view(JobState.DELIVERED, deadline=NOW - timedelta(seconds=1)),
        (JobState.EXPIRED, EndReason.NO_AGENT),
        id="delivered-past-pickup",
    ),
    pytest.param(
        view(JobState.PENDING, deadline=NOW + timedelta(seconds=1)),
        None,
        id="pickup-deadline-ahead",
    ),
    pytest.param(view(JobState.PENDING), None, id="no-pickup-deadline"),
    pytest.param(
        view(
            JobState.ACKED, deadline=NOW - timedelta(hours=1), started_at=NOW - timedelta(minutes=5)
        ),
        None,
        id="acked-ignores-pickup-deadline",
    ),
    pytest.param(
        view(
            JobState.INSTALLING, started_at=NOW - timedelta(hours=1), run_timeout=timedelta(hours=1)
        ),
        (JobState.FAILED, EndReason.TIMED_OUT),
        id="run-deadline-reached",
    ),
    pytest.param(
        view(
            JobState.INSTALLING,
            started_at=NOW - timedelta(minutes=59),
            run_timeout=timedelta(hours=1),
        ),
        None,
        id="run-deadline-ahead",
    ),
    pytest.param(
        view(JobState.FAILED, started_at=NOW - timedelta(days=1), deadline=NOW - timedelta(days=1)),
        None,
        id="finished-job",
    ),
]


@pytest.mark.parametrize(("job", "expected"), ENDED_CASES)
def test_ended_at(job: JobView, expected: tuple[JobState, str] | None) -> None:
    """Pickup deadline expires untaken jobs; run deadline fails started ones; both inclusive."""
    assert expected == jobs.ended_at(job, now=NOW)


def test_settle_ends_an_overdue_job() -> None:
    """An overdue job is ended at `now` with its state and reason; the rest is kept."""
    job = view(JobState.DELIVERED, deadline=NOW - timedelta(minutes=1), patch_ids=("KB1",))
    expected = replace(job, state=JobState.EXPIRED, updated_at=NOW, end_reason="no-agent")
    assert expected == jobs.settle(job, now=NOW)


def test_settle_keeps_a_job_within_its_deadlines() -> None:
    """A job within its deadlines is returned as it is (the same object)."""
    job = view(JobState.PENDING, deadline=NOW + timedelta(minutes=1))
    assert jobs.settle(job, now=NOW) is job


# --- the state machine ---------------------------------------------------------------------

S = JobState
_STATES = (
    S.PENDING,
    S.DELIVERED,
    S.ACKED,
    S.DOWNLOADING,
    S.INSTALLING,
    S.REBOOTING,
    S.SUCCEEDED,
    S.FAILED,
    S.EXPIRED,
    S.CANCELLED,
)
# What an agent's event does: row = the job's state, column = the reported state (in `_STATES`
# order); A advance, P progress (same state again), - refused.
_AGENT_MATRIX = {
    S.PENDING: "- - A A A A A A - -",
    S.DELIVERED: "- - A A A A A A - -",
    S.ACKED: "- - P A A A A A - -",
    S.DOWNLOADING: "- - - P A A A A - -",
    S.INSTALLING: "- - - - P A A A - -",
    S.REBOOTING: "- - - - - P A A - -",
    S.SUCCEEDED: "- - - - - - - - - -",
    S.FAILED: "- - - - - - - - - -",
    S.EXPIRED: "- - - - - - - - - -",
    S.CANCELLED: "- - - - - - - - - -",
}
_VERDICTS = {
    "A": jobs.EventVerdict.ADVANCE,
    "P": jobs.EventVerdict.PROGRESS,
    "-": jobs.EventVerdict.ILLEGAL,
}
AGENT_CASES = [
    pytest.param(current, reported, _VERDICTS[mark], id=f"{current.value}-to-{reported.value}")
    for current, row in _AGENT_MATRIX.items()
    for reported, mark in zip(_STATES, row.split(), strict=True)
]


@pytest.mark.parametrize(("current", "reported", "expected"), AGENT_CASES)
def test_every_agent_transition(
    current: JobState, reported: JobState, expected: jobs.EventVerdict
) -> None:
    """Agents move unfinished jobs forwards only (skipping is fine); finished jobs never move."""
    verdict, reason = jobs.evaluate_event(current, reported)
    assert (expected, expected is jobs.EventVerdict.ILLEGAL) == (verdict, bool(reason))


_REASONS = (
    EndReason.NO_AGENT,
    EndReason.NOT_INSTALLABLE,
    EndReason.SUPERSEDED,
    EndReason.TIMED_OUT,
    EndReason.RE_ENROLLED,
    EndReason.OPERATOR,
    EndReason.DEVICE_RETIRED,
)
# What the controller's ending does: row = the job's state, column = the reason (in `_REASONS`
# order); the state it ends in, or - (left alone).
_ENDING_MATRIX = {
    S.PENDING: "expired cancelled cancelled - - cancelled cancelled",
    S.DELIVERED: "expired cancelled cancelled - - cancelled cancelled",
    S.ACKED: "- - - failed failed cancelled cancelled",
    S.DOWNLOADING: "- - - failed failed cancelled cancelled",
    S.INSTALLING: "- - - failed failed cancelled cancelled",
    S.REBOOTING: "- - - failed failed cancelled cancelled",
    S.SUCCEEDED: "- - - - - - -",
    S.FAILED: "- - - - - - -",
    S.EXPIRED: "- - - - - - -",
    S.CANCELLED: "- - - - - - -",
}
ENDING_CASES = [
    pytest.param(
        current,
        reason,
        None if to == "-" else JobState(to),
        id=f"{current.value}-{reason.value}",
    )
    for current, row in _ENDING_MATRIX.items()
    for reason, to in zip(_REASONS, row.split(), strict=True)
]


@pytest.mark.parametrize(("current", "reason", "expected"), ENDING_CASES)
def test_every_controller_ending(
    current: JobState, reason: EndReason, expected: JobState | None
) -> None:
    """The controller ends a job only from the states its reason allows; finished jobs stay."""
    assert expected == jobs.evaluate_ending(current, reason)


def test_the_tables_cover_every_state_and_reason() -> None:
    """Every state has an agent row and every end reason an ending (a new one fails here)."""
    assert (set(JobState), set(EndReason)) == (set(jobs.AGENT_MOVES), set(jobs.ENDINGS))
