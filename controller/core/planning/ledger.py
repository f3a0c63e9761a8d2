"""The job ledger indexed once for the questions the planner asks.

Purely computational, no side effects. Rule sources: DESIGN.md 3.7 (scans after installs), 3.8
(rollout limits per window occurrence).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.core.compliance import DeviceHistory
from controller.core.observed import JobKind, JobState, JobView, PatchResult
from controller.core.planning.values import EPOCH

Slot = tuple[str, str]
"""A window occurrence: (window key `tenant/name`, occurrence key)."""


@dataclass
class Ledger:
    """The job ledger (after overdue jobs were settled), indexed.

    `in_flight`: device ids with a job in flight; `by_device`: each device's jobs, oldest first;
    `attempted`: (device, window, occurrence) → patch ids an install asked for; `running` and
    `failed_devices`: per window occurrence, the installs in flight and the devices that failed
    one (the counters of rollout limits).
    """

    ids: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    by_device: dict[str, list[JobView]] = field(default_factory=lambda: defaultdict(list))
    attempted: dict[tuple[str, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    running: dict[Slot, int] = field(default_factory=lambda: defaultdict(int))
    failed_devices: dict[Slot, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def of(cls, jobs: Iterable[JobView]) -> Ledger:
        ledger = cls()
        for job in sorted(jobs, key=lambda j: (j.created_at or EPOCH, j.id)):
            ledger.ids.add(job.id)
            ledger.by_device[job.device_id].append(job)
            if job.state.in_flight:
                ledger.in_flight.add(job.device_id)
            if job.kind is JobKind.INSTALL and job.window and job.occurrence:
                slot = (job.window, job.occurrence)
                ledger.attempted[(job.device_id, *slot)].update(job.patch_ids)
                if job.state.in_flight:
                    ledger.running[slot] += 1
                if job.state is JobState.FAILED or PatchResult.FAILED in job.results.values():
                    ledger.failed_devices[slot].add(job.device_id)
        return ledger


def device_history(jobs: Iterable[JobView]) -> DeviceHistory:
    """Failed patches (last attempt failed) and patches waiting for a reboot, from the ledger.

    A job the controller ended (timed out, expired) says nothing about the device's patches."""
    failed: set[str] = set()
    pending_reboot: frozenset[str] = frozenset()
    for job in jobs:  # oldest first
        if job.kind is not JobKind.INSTALL or job.state.in_flight or job.end_reason:
            continue
        installed = {p for p, r in job.results.items() if r is PatchResult.INSTALLED}
        failed -= installed
        failed.update(p for p, r in job.results.items() if r is PatchResult.FAILED)
        if job.state in {JobState.SUCCEEDED, JobState.FAILED}:
            pending_reboot = frozenset(installed) if job.reboot_required else frozenset()
    return DeviceHistory(failed=frozenset(failed), pending_reboot=pending_reboot)


def latest_finished_install(jobs: Iterable[JobView]) -> JobView | None:
    """The device's last install that succeeded or failed (jobs oldest first), if any."""
    finished = [
        j
        for j in jobs
        if j.kind is JobKind.INSTALL and j.state in {JobState.SUCCEEDED, JobState.FAILED}
    ]
    return finished[-1] if finished else None
