"""Alerts: per-device conditions (offline in a window, reboot pending), what agents reported
about their jobs, jobs the controller ended, and the info events of a pass grouped per batch.

Purely computational, no side effects. Which alerts report a condition: `CONDITION_TYPES`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.core import jobs
from controller.core.ids import AlertKey, WindowOccurrence
from controller.core.observed import DeviceView, JobKind, JobState, JobView, PatchResult, ScanView
from controller.core.planning.ledger import latest_finished_install
from controller.core.planning.values import (
    CONDITION_TYPES,
    GROUP_SAMPLE,
    REBOOT_PENDING_MESSAGE,
    AlertSpec,
)
from controller.kinds.notifications import AlertSeverity, EventType


def offline_in_window(device: DeviceView, window: str, occurrence: str) -> AlertSpec:
    """`AgentOfflineInWindow`: an offline device with approved patches in an open occurrence."""
    return AlertSpec(
        AlertKey.of(
            EventType.AGENT_OFFLINE_IN_WINDOW,
            device.id,
            WindowOccurrence(window, occurrence).format(),
        ).format(),
        EventType.AGENT_OFFLINE_IN_WINDOW,
        AlertSeverity.WARNING,
        f"{device.name} is offline during PatchWindow {window} and has approved patches waiting",
        device_id=device.id,
    )


def silent_with_install(
    device: DeviceView, device_jobs: Iterable[JobView], *, now: datetime
) -> list[AlertSpec]:
    """A device that went silent (offline by rule 8) while its install job is in flight
    raises `AgentOfflineInWindow` naming it, during the window, not only the job's expiry
    or time-out later; it resolves when the device checks in again or the job ends."""
    if device.is_online(now=now):
        return []
    seen = f"{device.last_seen:%Y-%m-%d %H:%M}Z" if device.last_seen else "never"
    return [
        AlertSpec(
            AlertKey.of(
                EventType.AGENT_OFFLINE_IN_WINDOW,
                device.id,
                # an install outside any window (an operator's) keeps the key it always had
                WindowOccurrence(str(job.window), str(job.occurrence)).format(),
            ).format(),
            EventType.AGENT_OFFLINE_IN_WINDOW,
            AlertSeverity.WARNING,
            f"{device.name} went silent (last seen {seen}) during PatchWindow "
            f"{job.window} with install job {job.id} {job.state.value}",
            device_id=device.id,
            job_id=job.id,
        )
        for job in device_jobs
        if job.kind is JobKind.INSTALL and job.state.in_flight
    ]


def reboot_pending(
    device: DeviceView, scan: ScanView | None, device_jobs: Iterable[JobView]
) -> AlertSpec | None:
    """`RebootPending` while the latest scan, newer than the last finished install, says so."""
    if scan is None or not scan.reboot_required:
        return None
    latest = latest_finished_install(device_jobs)
    if latest is None:
        return None
    # both on the server's clock: when the scan arrived, when the job's last event did
    if latest.updated_at is None or scan.fresh_at < latest.updated_at:
        return None
    return AlertSpec(
        AlertKey.of(EventType.REBOOT_PENDING, device.id, latest.id).format(),
        EventType.REBOOT_PENDING,
        AlertSeverity.WARNING,
        f"{device.name}: {REBOOT_PENDING_MESSAGE}",
        device_id=device.id,
        job_id=latest.id,
    )


def holding(alerts: Iterable[AlertSpec], failed: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The condition alerts that hold: every offline and reboot alert reported in this pass,
    and an install failure while its patch is still failed on the device (`device_history`)."""
    return frozenset(
        alert.key
        for alert in alerts
        if alert.type in CONDITION_TYPES
        and (
            alert.type is not EventType.INSTALL_FAILED
            or alert.patch_id in failed.get(alert.device_id or "", frozenset())
        )
    )


def ended(job: JobView, names: Mapping[str, str], *, now: datetime) -> AlertSpec:
    """The alert for a job the controller ends at `now`: `JobExpired` or `JobTimedOut`, naming
    the device."""
    device = names.get(job.device_id, job.device_id)
    if jobs.has_expired(job, now=now):
        return AlertSpec(
            AlertKey.of(EventType.JOB_EXPIRED, job.id).format(),
            EventType.JOB_EXPIRED,
            AlertSeverity.WARNING,
            f"no-agent: {device} did not pick up {job.kind.value} job {job.id} before its deadline",
            device_id=job.device_id,
            job_id=job.id,
        )
    deadline = jobs.run_deadline(job)
    return AlertSpec(
        AlertKey.of(EventType.JOB_TIMED_OUT, job.id).format(),
        EventType.JOB_TIMED_OUT,
        AlertSeverity.CRITICAL if job.kind is JobKind.INSTALL else AlertSeverity.WARNING,
        f"timed-out: {job.kind.value} job {job.id} on {device} stopped in state "
        f"{job.state.value}; no final state by {deadline:%Y-%m-%d %H:%M}Z; "
        "the device is planned again",
        device_id=job.device_id,
        job_id=job.id,
    )


def reported(ledger_jobs: Iterable[JobView], names: Mapping[str, str]) -> list[AlertSpec]:
    """Alerts that follow from what agents reported about their jobs, naming the device."""
    alerts: list[AlertSpec] = []
    for job in ledger_jobs:
        if job.kind is not JobKind.INSTALL:
            continue
        device = names.get(job.device_id, job.device_id)
        if job.state in DOWNLOADED:
            alerts.append(
                AlertSpec(
                    AlertKey.of(EventType.DOWNLOAD_INITIATED, job.id).format(),
                    EventType.DOWNLOAD_INITIATED,
                    AlertSeverity.INFO,
                    f"download of {len(job.patch_ids)} patch(es) initiated on {device} "
                    f"(job {job.id})",
                    device_id=job.device_id,
                    job_id=job.id,
                )
            )
        if job.state is JobState.SUCCEEDED:
            alerts.append(
                AlertSpec(
                    AlertKey.of(EventType.INSTALL_COMPLETE, job.id).format(),
                    EventType.INSTALL_COMPLETE,
                    AlertSeverity.INFO,
                    f"install of {len(job.patch_ids)} patch(es) complete on {device} "
                    f"(job {job.id})",
                    device_id=job.device_id,
                    job_id=job.id,
                )
            )
        alerts.extend(
            AlertSpec(
                AlertKey.of(EventType.INSTALL_FAILED, job.id, patch).format(),
                EventType.INSTALL_FAILED,
                AlertSeverity.CRITICAL,
                f"{patch} failed to install on {device}: "
                f"{job.reasons.get(patch) or 'no reason given'}",
                device_id=job.device_id,
                job_id=job.id,
                patch_id=patch,
            )
            for patch, result in sorted(job.results.items())
            if result is PatchResult.FAILED
        )
    return alerts


DOWNLOADED = frozenset(
    {
        JobState.DOWNLOADING,
        JobState.INSTALLING,
        JobState.REBOOTING,
        JobState.SUCCEEDED,
        JobState.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class Searched:
    """One install issued in a pass: which device, which job, which patches."""

    device: DeviceView
    job_id: str
    patches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Initiated:
    """One scan issued in a pass: which device, which job, why (reason, occasion key)."""

    device: DeviceView
    job_id: str
    reason: str
    occasion: str


def search(tenant: str, window: str, occurrence: str, batch: list[Searched]) -> AlertSpec:
    """`Search` for the installs one pass issued in one tenant's PatchWindow occurrence."""
    if len(batch) == 1:
        (one,) = batch
        return AlertSpec(
            AlertKey.of(EventType.SEARCH, one.device.id, _digest(one.patches)).format(),
            EventType.SEARCH,
            AlertSeverity.INFO,
            f"{len(one.patches)} missing patch(es) found and approved on {one.device.name}",
            device_id=one.device.id,
        )
    patches = sorted({p for item in batch for p in item.patches})
    return AlertSpec(
        AlertKey.of(
            EventType.SEARCH,
            tenant,
            WindowOccurrence(window, occurrence).format(),
            _digest(item.job_id for item in batch),
        ).format(),
        EventType.SEARCH,
        AlertSeverity.INFO,
        f"{len(patches)} missing patch(es) found and approved on {len(batch)} devices "
        f"in PatchWindow {window} occurrence {occurrence}: {_sample(batch)}",
        tenant=tenant,
        details={
            "window": window,
            "occurrence": occurrence,
            "devices": len(batch),
            "patches": len(patches),
            "installs": sum(len(item.patches) for item in batch),
            "sample": [item.device.name for item in batch[:GROUP_SAMPLE]],
        },
    )


def initiate(tenant: str, batch: list[Initiated]) -> AlertSpec:
    """`Initiate` for the scans one pass issued in one tenant; details count them by occasion
    (`initial`, `retry`, `due`, `after`: rule 7's occasions)."""
    if len(batch) == 1:
        (one,) = batch
        return AlertSpec(
            AlertKey.of(EventType.INITIATE, one.job_id).format(),
            EventType.INITIATE,
            AlertSeverity.INFO,
            f"scan initiated on {one.device.name}: {one.reason}",
            device_id=one.device.id,
            job_id=one.job_id,
        )
    occasions: dict[str, int] = defaultdict(int)
    for item in batch:
        occasions[item.occasion.split(":", 1)[0]] += 1
    return AlertSpec(
        AlertKey.of(EventType.INITIATE, tenant, _digest(item.job_id for item in batch)).format(),
        EventType.INITIATE,
        AlertSeverity.INFO,
        f"scan initiated on {len(batch)} devices: {_sample(batch)}",
        tenant=tenant,
        details={
            "devices": len(batch),
            "occasions": dict(sorted(occasions.items())),
            "sample": [item.device.name for item in batch[:GROUP_SAMPLE]],
        },
    )


def _sample(batch: list[Searched] | list[Initiated]) -> str:
    """The first `GROUP_SAMPLE` device names (the planner's device order), then "and N more"."""
    names = ", ".join(item.device.name for item in batch[:GROUP_SAMPLE])
    rest = len(batch) - GROUP_SAMPLE
    return f"{names} and {rest} more" if rest > 0 else names


def _digest(patch_ids: Iterable[str]) -> str:
    return hashlib.sha256(",".join(sorted(patch_ids)).encode()).hexdigest()[:12]


def grouped(
    searched: Iterable[tuple[tuple[str, str, str], Searched]],
    initiated: Iterable[tuple[str, Initiated]],
) -> list[AlertSpec]:
    """The pass's info events, one alert per batch instead of one per device (issue 14.3):
    one `Search` per (tenant, PatchWindow occurrence) and one `Initiate` per tenant, in
    key order; items come in the planner's device order, keyed by their batch. A batch of one
    device keeps the per-device alert (its message, key and device link). A batch's key digests
    its job ids, which are deterministic: a pass that repeats the same decision issues no job
    and so raises nothing new."""
    searches: dict[tuple[str, str, str], list[Searched]] = defaultdict(list)
    for slot, item in searched:
        searches[slot].append(item)
    scans: dict[str, list[Initiated]] = defaultdict(list)
    for tenant, one in initiated:
        scans[tenant].append(one)
    alerts = [
        search(tenant, window, occurrence, batch)
        for (tenant, window, occurrence), batch in sorted(searches.items())
    ]
    alerts.extend(initiate(tenant, batch) for tenant, batch in sorted(scans.items()))
    return alerts
