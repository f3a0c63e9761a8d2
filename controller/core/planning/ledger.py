"""The job ledger indexed once for the questions the planner asks.

Purely computational, no side effects. Rule sources: DESIGN.md 3.7 (scans after installs), 3.8
(rollout limits per window occurrence).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.core.compliance import DeviceHistory
from controller.core.observed import (
    DeviceJobs,
    JobKind,
    JobLedger,
    JobState,
    JobView,
    PatchResult,
)
from controller.core.planning.values import NO_HISTORY

Slot = tuple[str, str]
"""A window occurrence: (window key `tenant/name`, occurrence key)."""


@dataclass
class Ledger:
    """The job ledger (after overdue jobs were settled), indexed.

    `jobs`: the ledger by device (`by_device`: each device's jobs, oldest first; `in_flight`:
    device ids with a job in flight); `ids`: every job id; `attempted`: (device, window,
    occurrence) → patch ids an install asked for; `running` and `failed_devices`: per window
    occurrence, the installs in flight and the devices that failed one (the counters of
    rollout limits). Every index is a sum over devices, so `update` re-indexes only the
    devices whose jobs changed.
    """

    jobs: JobLedger = field(default_factory=JobLedger)
    ids: set[str] = field(default_factory=set)
    attempted: dict[tuple[str, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    running: dict[Slot, int] = field(default_factory=lambda: defaultdict(int))
    failed_devices: dict[Slot, set[str]] = field(default_factory=lambda: defaultdict(set))
    # each device's `device_history`, made when first asked and kept while its jobs are
    _histories: dict[str, DeviceHistory] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, jobs: JobLedger) -> Ledger:
        ledger = cls(jobs)
        for device_jobs in jobs.by_device.values():
            ledger._add(device_jobs)
        return ledger

    @property
    def by_device(self) -> Mapping[str, DeviceJobs]:
        return self.jobs.by_device

    @property
    def in_flight(self) -> frozenset[str]:
        return self.jobs.in_flight

    def history(self, device_id: str) -> DeviceHistory:
        """`device_history` of the device's jobs (an approval re-plans 10,000 devices whose
        jobs did not change: their histories are kept)."""
        found = self._histories.get(device_id)
        if found is None:
            device_jobs = self.jobs.of_device(device_id)
            found = device_history(device_jobs) if device_jobs else NO_HISTORY
            self._histories[device_id] = found
        return found

    def update(self, jobs: JobLedger) -> None:
        """Index `jobs` instead, in place: only the devices whose entry is another object than
        in the ledger indexed now (`JobLedger.replaced` keeps the others') are indexed again;
        equal to `Ledger.of(jobs)`."""
        before, after = self.jobs.by_device, jobs.by_device
        for device_id in jobs.differing(self.jobs):
            if (was := before.get(device_id)) is not None:
                self._remove(was)
            if (now := after.get(device_id)) is not None:
                self._add(now)
        self.jobs = jobs

    def _add(self, device_jobs: DeviceJobs) -> None:
        if device_jobs:
            self._histories.pop(device_jobs[0].device_id, None)
        for job in device_jobs:
            self.ids.add(job.id)
            if (slot := _slot(job)) is not None:
                self.attempted[(job.device_id, *slot)].update(job.patch_ids)
                if job.state.in_flight:
                    self.running[slot] += 1
                if job.state is JobState.FAILED or PatchResult.FAILED in job.results.values():
                    self.failed_devices[slot].add(job.device_id)

    def _remove(self, device_jobs: DeviceJobs) -> None:
        """Take one device's jobs out of the indexes (each entry keyed by the device is its
        own: it goes whole)."""
        if device_jobs:
            self._histories.pop(device_jobs[0].device_id, None)
        for job in device_jobs:
            self.ids.discard(job.id)
            if (slot := _slot(job)) is not None:
                self.attempted.pop((job.device_id, *slot), None)
                if job.state.in_flight:
                    self.running[slot] -= 1
                    if not self.running[slot]:
                        del self.running[slot]
                failed = self.failed_devices.get(slot)
                if failed is not None:
                    failed.discard(job.device_id)
                    if not failed:
                        del self.failed_devices[slot]


def _slot(job: JobView) -> Slot | None:
    """The window occurrence an install job belongs to; None for any other job."""
    if job.kind is JobKind.INSTALL and job.window and job.occurrence:
        return job.window, job.occurrence
    return None


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
