"""Scans (DESIGN.md 3.7, rule 7): when a device is due one, its retries, and scan jobs made moot
by a scan the agent reported on its own.

Purely computational, no side effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from controller.core import jobs, windows
from controller.core.decisions import Applicable
from controller.core.jobs import EndReason, JobSpec, job_id
from controller.core.observed import DeviceView, JobKind, JobState, JobView, ScanView
from controller.core.planning.ledger import latest_finished_install
from controller.core.planning.values import SCAN_DEADLINE, SCAN_RETRY_AFTER
from controller.kinds.scans import DEFAULT_SCAN_INTERVAL


def moot(device_jobs: Sequence[JobView], scan: ScanView | None) -> list[JobView]:
    """Scan jobs the agent has not taken once a scan the server received after the job was
    issued is there: they end (`superseded`) and free the device for its install in this very
    pass (issue 13.9: the outcome must not depend on which request came first, the agent's
    report or the reconcile that issued the scan)."""
    if scan is None:
        return []
    return [
        job
        for job in device_jobs
        if job.kind is JobKind.SCAN
        and job.state.in_flight
        and not job.state.started
        and job.created_at is not None
        and scan.fresh_at >= job.created_at
    ]


def job_for(
    device: DeviceView, reason: str, key: str, *, now: datetime, revision: str | None
) -> JobSpec:
    """The scan job for one occasion (`key`), picked up within `SCAN_DEADLINE`."""
    return JobSpec(
        id=job_id(device.id, JobKind.SCAN, (), key),
        device_id=device.id,
        kind=JobKind.SCAN,
        reason=reason,
        occurrence=key,
        deadline=now + SCAN_DEADLINE,
        revision=revision,
        run_timeout=jobs.run_timeout(JobKind.SCAN),
    )


def interval(applicable: Applicable) -> timedelta:
    """How often a device of the policy set scans: its `ScanSchedule`s' shortest `every`,
    else `DEFAULT_SCAN_INTERVAL` (DESIGN.md 3.7)."""
    return min((s.spec.every for s in applicable.scan_schedules), default=DEFAULT_SCAN_INTERVAL)


def occasion(
    scan: ScanView | None, device_jobs: Sequence[JobView], every: timedelta, *, now: datetime
) -> tuple[str, str] | None:
    """Rule 7: why a scan is due now (reason, occasion key), or None. `every`: the device's
    scan interval (`interval`)."""
    latest_install = latest_finished_install(device_jobs) if device_jobs else None
    if latest_install is not None and (
        scan is None
        or (latest_install.updated_at is not None and scan.fresh_at < latest_install.updated_at)
    ):
        return f"verify install {latest_install.id}", f"after:{latest_install.id}"
    if scan is None:
        scans = [j for j in device_jobs if j.kind is JobKind.SCAN]
        if not scans:
            return "initial scan after enrolment", "initial"
        return "retry initial scan", f"retry:{scans[-1].id}"
    if now - scan.fresh_at >= every:  # server clock: an agent's wrong clock neither hides
        stamp = windows.occurrence_key(scan.fresh_at)  # nor repeats a due scan
        return f"scan due every {every} (last {stamp})", f"due:{stamp}"
    return None


def retry_occasion(
    device_id: str, occasion: tuple[str, str], jobs_of_device: Sequence[JobView], *, now: datetime
) -> tuple[str, str] | None:
    """The occasion to issue a scan for, following retries: while the scan job of an occasion
    exists and ended without a scan (failed, expired, timed out, cancelled), the next is its
    retry (`retry:<job id>`). A scan the agent itself failed, or an operator cancelled, is
    retried `SCAN_RETRY_AFTER` later; one the controller ended (it waited for its deadline
    already) at once. None: wait.
    """
    by_id = {job.id: job for job in jobs_of_device if job.kind is JobKind.SCAN}
    if not by_id:  # no scan job yet (most devices, most passes): no occasion to follow
        return occasion
    reason, key = occasion
    while (job := by_id.get(job_id(device_id, JobKind.SCAN, (), key))) is not None:
        if job.state.in_flight or job.state is JobState.SUCCEEDED:
            return reason, key  # issued already: the caller finds its id in the ledger
        agent_failed = job.end_reason is None and job.state is JobState.FAILED
        # an operator's cancellation is a decision, not a lost job: it waits like a failure
        waits = agent_failed or job.end_reason == EndReason.OPERATOR
        if waits and job.updated_at is not None and now < job.updated_at + SCAN_RETRY_AFTER:
            return None
        reason, key = f"retry {reason.removeprefix('retry ')}", f"retry:{job.id}"
    return reason, key
