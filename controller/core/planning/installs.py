"""Installs (DESIGN.md 3.8, rule 8): the window occurrence a device may be patched in now, the
rollout limits of that occurrence, the install job, and installs made stale by a policy change.

Purely computational, no side effects.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from controller.core import jobs, windows
from controller.core.decisions import Applicable
from controller.core.ids import WindowOccurrence
from controller.core.jobs import JobSpec, ScriptPayload, job_id
from controller.core.observed import DeviceView, JobKind, JobView
from controller.core.planning.ledger import Slot
from controller.core.planning.values import window_key
from controller.kinds import PatchWindow
from controller.kinds.windows import MissedWindow


def stale(device_jobs: Iterable[JobView], installable: Collection[str]) -> list[str]:
    """Installs not yet taken by the agent whose patches are no longer all installable (an
    approval was revoked, a baseline now excludes one): cancelled (`not-installable`)."""
    allowed = set(installable)
    return [
        job.id
        for job in device_jobs
        if job.kind is JobKind.INSTALL
        and job.state.in_flight
        and not job.state.started
        and not set(job.patch_ids) <= allowed
    ]


def open_occurrence(
    device: DeviceView,
    applicable: Applicable,
    *,
    window_states: Mapping[str, windows.WindowState],
    attempted: Collection[tuple[str, str, str]],
    now: datetime,
) -> tuple[PatchWindow, windows.Occurrence, datetime] | None:
    """The window occurrence a device may be patched in now, with the job's pickup deadline:
    an open one before its cutoff, else a missed one it may still catch up on (not attempted
    yet: `attempted` holds (device, window, occurrence))."""
    for window in applicable.windows:
        current = window_states[window_key(window)].current
        if current is not None and current.accepts_new_installs(now):
            return window, current, current.end
    for window in applicable.windows:
        missed = window_states[window_key(window)].catch_up
        if window.spec.missed_window is not MissedWindow.CATCH_UP or missed is None:
            continue
        if (device.id, window_key(window), missed.key) in attempted:
            continue
        return window, missed, missed.end + window.spec.catch_up_within
    return None


def rollout_hold(
    window: PatchWindow,
    occurrence: str,
    *,
    population: int,
    running: Mapping[Slot, int],
    failed_devices: Mapping[Slot, Collection[str]],
) -> str | None:
    """Why the occurrence's rollout limits start no install now (None: they allow one).

    `population`: the patchable devices the window targets (the base of percentages);
    `running`: installs in flight per occurrence, those issued earlier in this pass included."""
    key = window_key(window)
    slot = (key, occurrence)
    rollout = window.spec.rollout
    limit = rollout.max_concurrent.of(population)
    if running.get(slot, 0) >= limit:
        return (
            f"PatchWindow {key} has {limit} install(s) running (rollout.maxConcurrent); "
            "it starts when one finishes"
        )
    failures = len(failed_devices.get(slot, ()))
    allowed = rollout.max_failures.of(population)
    if failures > allowed:
        return (
            f"PatchWindow {key} occurrence {occurrence} stopped starting installs: "
            f"{failures} device(s) failed (rollout.maxFailures {allowed})"
        )
    return None


def job_for(
    device: DeviceView,
    window: PatchWindow,
    occurrence: str,
    patches: tuple[str, ...],
    *,
    scripts: tuple[ScriptPayload | None, ScriptPayload | None],
    deadline: datetime,
    revision: str | None,
) -> JobSpec:
    """The install of `patches` on `device` in one window occurrence (`scripts`: pre, post)."""
    key = window_key(window)
    pre_script, post_script = scripts
    return JobSpec(
        id=job_id(device.id, JobKind.INSTALL, patches, WindowOccurrence(key, occurrence).format()),
        device_id=device.id,
        kind=JobKind.INSTALL,
        reason=f"PatchWindow {key} occurrence {occurrence}",
        patch_ids=patches,
        window=key,
        occurrence=occurrence,
        reboot=window.spec.reboot,
        pre_script=pre_script,
        post_script=post_script,
        deadline=deadline,
        revision=revision,
        run_timeout=jobs.run_timeout(
            JobKind.INSTALL,
            window_duration=window.spec.duration,
            reboot=window.spec.reboot,
            scripts=(pre_script, post_script),
        ),
    )
