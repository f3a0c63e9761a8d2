"""One device's plan as a value: its jobs to issue, cancel and supersede, its compliance rows,
alerts and summary, planned from the pass-wide facts (`PassFacts`).

Purely computational, no side effects. Devices couple only through the rollout counters of
the window occurrences they share (`running`, read here, counted by the caller: DESIGN.md 3.8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.core import windows
from controller.core.compliance import BaselineCompliance
from controller.core.decisions import Applicable
from controller.core.desired import DesiredState
from controller.core.jobs import JobSpec, ScriptPayload
from controller.core.observed import DeviceView, JobView, ScanView
from controller.core.planning import alerts, installs, scans, scripts
from controller.core.planning.alerts import Initiated, Searched
from controller.core.planning.ledger import Ledger, Slot
from controller.core.planning.policysets import PolicySets
from controller.core.planning.values import (
    CONDITION_TYPES,
    AlertSpec,
    DeviceSummary,
    window_key,
)
from controller.core.records import quick_init
from controller.kinds import PatchWindow, ScriptJob


@dataclass
class PassFacts:
    """What every device of one pass is planned from: policy, scans, the settled ledger, the
    policy sets, each window's state and population (patchable devices it targets) at `now`."""

    desired: DesiredState
    scans: Mapping[str, ScanView]
    ledger: Ledger
    sets: PolicySets
    window_states: Mapping[str, windows.WindowState]
    population: Mapping[str, int]
    now: datetime
    _upcoming: dict[int, tuple[str, datetime] | None] = field(default_factory=dict)
    _latest_starts: dict[int, datetime | None] = field(default_factory=dict)
    _window_scripts: dict[int, tuple[ScriptPayload | None, ScriptPayload | None]] = field(
        default_factory=dict
    )
    _shared: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    _intervals: dict[int, timedelta] = field(default_factory=dict)

    def shared(self, patch_ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """`patch_ids` as a tuple, the very tuple of an equal one shared earlier in the pass.

        Devices with the same scan under the same policy set have equal patch lists (a fleet
        of a million devices has a few thousand distinct ones): sharing them saves a tuple per
        device and list (issue 14 item 7). Scoped to the pass, so the table never outlives the
        plans; kept plans hold their tuples, equal to (not the same as) the next pass's."""
        if not patch_ids:
            return ()
        found = tuple(patch_ids)
        return self._shared.setdefault(found, found)

    def window_scripts(
        self, window: PatchWindow
    ) -> tuple[ScriptPayload | None, ScriptPayload | None]:
        """A window's pre and post scripts as sent (`scripts.payload`), once per pass: every
        install of an occurrence carries the same."""
        key = id(window)
        found = self._window_scripts.get(key)
        if found is None:
            found = (
                scripts.payload(self.desired, window, window.spec.pre_script),
                scripts.payload(self.desired, window, window.spec.post_script),
            )
            self._window_scripts[key] = found
        return found

    def scan_interval(self, applicable: Applicable) -> timedelta:
        """`scans.interval` of a policy set, once per pass."""
        key = id(applicable)
        found = self._intervals.get(key)
        if found is None:
            found = self._intervals[key] = scans.interval(applicable)
        return found

    def latest_start(self, script_job: ScriptJob) -> datetime | None:
        """`scripts.latest_start` at `now`, computed once per script job in a pass."""
        key = id(script_job)
        if key not in self._latest_starts:
            self._latest_starts[key] = scripts.latest_start(script_job, now=self.now)
        return self._latest_starts[key]

    def next_window(self, applicable: Applicable) -> tuple[str, datetime] | None:
        """The first open or upcoming window of a policy set: (key, start), computed once."""
        key = id(applicable)
        if key not in self._upcoming:
            self._upcoming[key] = self._first_window(applicable)
        return self._upcoming[key]

    def _first_window(self, applicable: Applicable) -> tuple[str, datetime] | None:
        upcoming = [
            (state.current.start if state.current else state.upcoming.start, window_key(w))  # type: ignore[union-attr]
            for w in applicable.windows
            if (state := self.window_states[window_key(w)]).current or state.upcoming
        ]
        if not upcoming:
            return None
        start, key = min(upcoming)
        return key, start


@quick_init
@dataclass(frozen=True, slots=True)
class DevicePlan:
    """What one pass decides for one device.

    `failed`: patches whose last install failed (`device_history`), for the holding of
    `InstallFailed` alerts; `searched`/`initiated`: the installs and scans issued, keyed by
    their batch, for the grouped `Search`/`Initiate` alerts; `holding`: the keys of this
    device's condition alerts; `rollout_window`: the window whose rollout limits this plan
    read (its install waited on them or passed them), the one coupling between devices."""

    device: DeviceView
    summary: DeviceSummary
    issue: tuple[JobSpec, ...] = ()
    cancel: tuple[str, ...] = ()
    supersede: tuple[str, ...] = ()
    compliance: tuple[BaselineCompliance, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    failed: frozenset[str] = frozenset()
    searched: tuple[tuple[tuple[str, str, str], Searched], ...] = ()
    initiated: tuple[tuple[str, Initiated], ...] = ()
    holding: frozenset[str] = frozenset()
    rollout_window: str | None = None


@dataclass
class _Draft:
    """The device plan while its steps run; `in_flight`: the device has a job in flight."""

    in_flight: bool
    issue: list[JobSpec] = field(default_factory=list)
    alerts: list[AlertSpec] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    supersede: list[str] = field(default_factory=list)
    rollout_window: str | None = None


def plan_device(
    facts: PassFacts, device: DeviceView, applicable: Applicable, running: Mapping[Slot, int]
) -> DevicePlan:
    """Plan one device: compliance, stale installs, moot scans, a scan, an install, script
    jobs, alerts, in that order (the order the jobs are issued in). `running`: installs in
    flight per window occurrence, those this pass issued to earlier devices included."""
    scan = facts.scans.get(device.id)
    device_jobs = facts.ledger.jobs.of_device(device.id)
    history = facts.ledger.history(device.id)
    compliance = tuple(
        evaluator.evaluate(
            device_id=device.id, scan=scan, history=history, now=facts.now, share=facts.shared
        )
        for evaluator in facts.sets.evaluators(applicable)
    )
    installable, pending = _triage(facts.sets, applicable, scan)
    draft = _Draft(in_flight=device.id in facts.ledger.in_flight)
    _end_moot_jobs(draft, device_jobs, scan, installable)
    initiated = _scan(facts, draft, device, applicable, scan, device_jobs)
    issued, hold, searched = _install(facts, draft, device, applicable, installable, running)
    _script_jobs(facts, draft, device, applicable)
    reboot = alerts.reboot_pending(device, scan, device_jobs)
    if reboot is not None:
        draft.alerts.append(reboot)
    if device_jobs:
        draft.alerts.extend(alerts.silent_with_install(device, device_jobs, now=facts.now))
    # a gateway is never patched (DESIGN.md §1): nothing of it is to be installed in a window,
    # whatever policy approves (status, `plan`'s projection and explain read the summary)
    upcoming = None if device.is_gateway else facts.next_window(applicable)
    summary = DeviceSummary(
        device.id,
        () if device.is_gateway else facts.shared(installable),
        facts.shared(pending),
        upcoming[0] if upcoming else None,
        upcoming[1] if upcoming else None,
        issued,
        hold,
    )
    return DevicePlan(
        device=device,
        summary=summary,
        issue=tuple(draft.issue),
        cancel=tuple(draft.cancel),
        supersede=tuple(draft.supersede),
        compliance=compliance,
        alerts=tuple(draft.alerts),
        failed=history.failed,
        searched=searched,
        initiated=initiated,
        holding=_holding(draft.alerts),
        rollout_window=draft.rollout_window,
    )


_NONE_HOLDING: frozenset[str] = frozenset()


def _holding(found: list[AlertSpec]) -> frozenset[str]:
    """The keys of the condition alerts among `found`. Most devices hold none: they share one
    empty frozenset (`frozenset(())` makes a new 216-byte one each time, 200 MB a million)."""
    keys = [a.key for a in found if a.type in CONDITION_TYPES]
    return frozenset(keys) if keys else _NONE_HOLDING


def _triage(
    sets: PolicySets, applicable: Applicable, scan: ScanView | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The device's missing patches that are installable, and those pending approval (the
    two exclude each other: installable needs approved, pending needs not approved)."""
    missing = scan.missing if scan else ()
    if not missing:
        return (), ()
    return sets.triaged(applicable, missing)


def _end_moot_jobs(
    draft: _Draft,
    device_jobs: Sequence[JobView],
    scan: ScanView | None,
    installable: tuple[str, ...],
) -> None:
    """Cancel stale installs and supersede moot scans; either may free the device."""
    if not device_jobs:
        return
    draft.cancel.extend(installs.stale(device_jobs, installable))
    if draft.cancel:
        draft.in_flight = False
    moot = scans.moot(device_jobs, scan)
    if not moot:
        return
    draft.supersede.extend(job.id for job in moot)
    ended = {job.id for job in moot} | set(draft.cancel)
    if not any(job.state.in_flight and job.id not in ended for job in device_jobs):
        draft.in_flight = False


def _scan(
    facts: PassFacts,
    draft: _Draft,
    device: DeviceView,
    applicable: Applicable,
    scan: ScanView | None,
    device_jobs: Sequence[JobView],
) -> tuple[tuple[str, Initiated], ...]:
    """Issue the scan rule 7 asks for, if any and not issued already."""
    if draft.in_flight:
        return ()
    occasion = scans.occasion(scan, device_jobs, facts.scan_interval(applicable), now=facts.now)
    if occasion is None:
        return ()
    occasion = scans.retry_occasion(device.id, occasion, device_jobs, now=facts.now)
    if occasion is None:
        return ()
    reason, key = occasion
    job = scans.job_for(device, reason, key, now=facts.now, revision=facts.desired.revision)
    if job.id in facts.ledger.ids:
        return ()
    _emit(draft, job)
    return ((device.tenant, Initiated(device, job.id, reason, key)),)


def _install(
    facts: PassFacts,
    draft: _Draft,
    device: DeviceView,
    applicable: Applicable,
    installable: tuple[str, ...],
    running: Mapping[Slot, int],
) -> tuple[str | None, str | None, tuple[tuple[tuple[str, str, str], Searched], ...]]:
    """Issue the device's install job if rule 8 allows it now: (the job id, None, its batch),
    or (None, why not, ()) when an occurrence accepts installs but the device gets none."""
    if device.is_gateway or not installable or draft.in_flight:
        return None, None, ()
    ledger = facts.ledger
    chosen = installs.open_occurrence(
        device,
        applicable,
        window_states=facts.window_states,
        attempted=ledger.attempted,
        now=facts.now,
    )
    if chosen is None:
        return None, None, ()
    window, occurrence, deadline = chosen
    key = window_key(window)
    attempted = ledger.attempted.get((device.id, key, occurrence.key))
    fresh = [p for p in installable if p not in attempted] if attempted else installable
    # apt installs `name=version` pairs: Debian/Ubuntu advisories go as their packages
    patches = tuple(facts.sets.job_patches(fresh))
    if not patches:
        return None, f"already attempted in PatchWindow {key} occurrence {occurrence.key}", ()
    if not device.is_online(now=facts.now):
        draft.alerts.append(alerts.offline_in_window(device, key, occurrence.key))
        return None, "the device is offline (no check-in within two poll intervals)", ()
    draft.rollout_window = key
    held = installs.rollout_hold(
        window,
        occurrence.key,
        population=facts.population.get(key, 0),
        running=running,
        failed_devices=ledger.failed_devices,
    )
    if held is not None:
        return None, held, ()
    scripts_of = facts.window_scripts(window)
    job = installs.job_for(
        device,
        window,
        occurrence.key,
        patches,
        scripts=scripts_of,
        deadline=deadline,
        revision=facts.desired.revision,
    )
    _emit(draft, job)
    batch = (device.tenant, key, occurrence.key)
    return job.id, None, ((batch, Searched(device, job.id, patches)),)


def _script_jobs(
    facts: PassFacts, draft: _Draft, device: DeviceView, applicable: Applicable
) -> None:
    """Issue the script jobs whose latest scheduled start is within the look-back period."""
    for script_job in facts.sets.script_jobs(applicable):
        if draft.in_flight or device.is_gateway:
            return
        start = facts.latest_start(script_job)
        if start is None:
            continue
        payload = scripts.payload(facts.desired, script_job, script_job.spec.script)
        if payload is None:
            continue
        job = scripts.job_for(
            device, script_job, payload, start=start, revision=facts.desired.revision
        )
        if job.id not in facts.ledger.ids:
            _emit(draft, job)


def _emit(draft: _Draft, job: JobSpec) -> None:
    draft.issue.append(job)
    draft.in_flight = True


__all__ = ["DevicePlan", "PassFacts", "plan_device"]
