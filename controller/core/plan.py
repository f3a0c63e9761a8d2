"""The planner: `plan(desired, observed, now=...) -> Plan`.

Purely computational, no side effects: the desired state (policy at a revision), the observed
state (devices, scans, the job ledger, the catalogue) and the instant go in; the jobs to issue,
cancel and expire, the compliance of every device and the alerts to raise come out. The runtime
applies a plan once, in one transaction.

Speed: decisions depend only on the policy set that targets a device and on the patch, so they are
computed once per (policy set, patch) and shared; target matching is computed once per distinct set
of device facts. A fleet of 100,000 devices typically has a few dozen policy sets.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from controller.core import advisories, compliance, jobs, references, targets, windows
from controller.core.compliance import BaselineCompliance, DeviceHistory
from controller.core.decisions import Applicable, Decision, decide, object_ref
from controller.core.desired import DesiredState
from controller.core.jobs import EndReason, JobSpec, ScriptPayload, job_id
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobState,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
)
from controller.kinds import Document, PatchWindow, Script, ScriptJob
from controller.kinds.notifications import AlertSeverity, EventType
from controller.kinds.scans import DEFAULT_SCAN_INTERVAL
from controller.kinds.windows import MissedWindow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCAN_DEADLINE = timedelta(days=1)
_NO_HISTORY = DeviceHistory()
SCRIPT_JOB_LOOKBACK = timedelta(days=1)
SCAN_RETRY_AFTER = timedelta(hours=1)  # after an agent reported a scan job failed
REBOOT_PENDING_MESSAGE = "Patching completed and need to reboot."
# Alerts that report a condition (raised → resolved): while it holds the planner reports the
# alert's key in every pass (`Plan.holding`); an open alert of these types whose key is no
# longer reported is resolved. Other alerts report events (a scan initiated, a job expired).
CONDITION_TYPES = frozenset(
    {EventType.AGENT_OFFLINE_IN_WINDOW, EventType.REBOOT_PENDING, EventType.INSTALL_FAILED}
)
# How many device names a grouped info alert (`Search`, `Initiate`) quotes: enough to recognise
# the batch, bounded so one approval over 100,000 devices is still a one-line alert (issue 14.3)
GROUP_SAMPLE = 10


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """An alert to raise. `key` identifies the transition: the store raises each key once.

    `tenant`: the tenant path of an alert about several devices (a grouped `Search` or
    `Initiate`); None means the device's tenant (or every tenant without a device).
    `details`: extra JSON figures stored with the alert (a group's counts and sample).
    """

    key: str
    type: EventType
    severity: AlertSeverity
    message: str
    device_id: str | None = None
    job_id: str | None = None
    patch_id: str | None = None
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """Per-device figures for status and explain."""

    device_id: str
    installable: tuple[str, ...]
    pending_approval: tuple[str, ...]
    next_window: str | None  # "tenant/name"
    next_window_start: datetime | None
    install_job: str | None = None  # the install job this plan issues for the device
    # why the device's installable patches get no install in this pass although a window
    # occurrence accepts installs (one sentence), for explain: the planner's own reason
    install_hold: str | None = None


@dataclass(frozen=True)
class Plan:
    """What one reconcile decides. Empty `issue`/`cancel`/`expire`/`time_out`/`alerts` mean
    nothing to do.

    `supersede`: scan jobs the agent has not taken when a scan it reported on its own arrived
    after they were issued (`superseded`): the scan they asked for is there, and the device is
    free for its install in the same pass, whichever request came first.
    `expire`: jobs the agent never took before their pickup deadline (`no-agent`); `time_out`:
    started jobs past their run deadline, to be failed (`timed-out`, with the state they were in).
    """

    revision: str | None
    now: datetime
    issue: tuple[JobSpec, ...] = ()
    cancel: tuple[str, ...] = ()
    supersede: tuple[str, ...] = ()  # scan jobs not taken, made moot by a fresh scan
    expire: tuple[str, ...] = ()
    time_out: tuple[str, ...] = ()
    compliance: tuple[BaselineCompliance, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    devices: tuple[DeviceSummary, ...] = ()
    windows: Mapping[str, windows.WindowState] = field(default_factory=dict)
    # keys of the `CONDITION_TYPES` alerts whose condition holds at `now` (raised or not)
    holding: frozenset[str] = frozenset()

    @property
    def pending_approvals(self) -> int:
        return sum(len(d.pending_approval) for d in self.devices)

    def counts(self) -> dict[str, int]:
        return {
            "issued": len(self.issue),
            "cancelled": len(self.cancel),
            "superseded": len(self.supersede),
            "expired": len(self.expire),
            "timedOut": len(self.time_out),
            "alerts": len(self.alerts),
            "devices": len(self.devices),
            "pendingApprovals": self.pending_approvals,
        }


def window_key(window: PatchWindow) -> str:
    return f"{window.tenant or '*'}/{window.name}"


# --- the ledger, indexed once -----------------------------------------------------------------


@dataclass
class _Ledger:
    """The job ledger indexed for the questions the planner asks, plus what this plan adds."""

    ids: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)  # device ids with a job in flight
    by_device: dict[str, list[JobView]] = field(default_factory=lambda: defaultdict(list))
    attempted: dict[tuple[str, str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # (device, window, occurrence) -> patch ids
    running: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    failed_devices: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )

    @classmethod
    def of(cls, jobs: Iterable[JobView]) -> _Ledger:
        ledger = cls()
        for job in sorted(jobs, key=lambda j: (j.created_at or _EPOCH, j.id)):
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

    def add(self, job: JobSpec) -> None:
        self.ids.add(job.id)
        self.in_flight.add(job.device_id)
        if job.kind is JobKind.INSTALL and job.window and job.occurrence:
            self.attempted[(job.device_id, job.window, job.occurrence)].update(job.patch_ids)
            self.running[(job.window, job.occurrence)] += 1


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


def _latest_finished_install(jobs: Iterable[JobView]) -> JobView | None:
    finished = [
        j
        for j in jobs
        if j.kind is JobKind.INSTALL and j.state in {JobState.SUCCEEDED, JobState.FAILED}
    ]
    return finished[-1] if finished else None


# --- policy sets ------------------------------------------------------------------------------


class PolicySets:
    """Applicable policy objects per distinct device facts, and decisions per (set, patch)."""

    def __init__(self, desired: DesiredState, observed: ObservedState, *, today: date) -> None:
        self.desired = desired
        self.observed = observed
        self.today = today
        self.named = targets.named_devices(desired)
        self._by_facts: dict[tuple[object, ...], Applicable] = {}
        self._script_jobs: dict[int, tuple[ScriptJob, ...]] = {}
        self._decisions: dict[int, compliance.LazyMap[str, Decision]] = {}
        self._evaluators: dict[int, tuple[compliance.BaselineEvaluator, ...]] = {}
        self._advisories: advisories.AdvisoryIndex | None = None
        self.job_patches = advisories.JobPatches(observed.patch)
        self._listed_advisories: dict[int, frozenset[str]] = {}

    def advisory_index(self) -> advisories.AdvisoryIndex:
        """The catalogue's Debian and Ubuntu advisories, indexed on first use."""
        if self._advisories is None:
            self._advisories = advisories.AdvisoryIndex(self.observed.catalogue.values())
        return self._advisories

    def grouping(self, applicable: Applicable, missing: tuple[str, ...]) -> advisories.Grouping:
        """The device's package patches approved through an approved, missing advisory."""
        listed = self._listed_advisories.get(id(applicable))
        if listed is None:
            index = self.advisory_index()
            ids = {p for a in applicable.approvals for p in a.spec.patches}
            ids.update(p for w in applicable.whitelists for p in w.explicit_ids())
            listed = frozenset(p for p in ids if p in index) if index else frozenset()
            self._listed_advisories[id(applicable)] = listed
        if not listed or listed.isdisjoint(missing):
            return advisories.NOTHING
        return advisories.group(
            missing,
            self.decisions(applicable),
            index=self.advisory_index(),
            record=self.observed.patch,
        )

    def applicable(self, device: DeviceView) -> Applicable:
        facts = (
            device.tenant,
            device.name if device.name in self.named else None,
            device.os,
            device.os_name,
            device.os_version,
            tuple(sorted(device.labels.items())),
        )
        found = self._by_facts.get(facts)
        if found is None:
            found = self._evaluate(device)
            self._by_facts[facts] = found
        return found

    def _evaluate(self, device: DeviceView) -> Applicable:
        desired = self.desired

        def targeting(objects: tuple[T, ...]) -> tuple[T, ...]:
            return tuple(o for o in objects if _targets(o, device, desired))

        found = Applicable(
            os=device.os,
            baselines=tuple(b for b in targeting(desired.baselines) if b.spec.os == device.os),
            whitelists=targeting(desired.whitelists),
            approvals=targeting(desired.approvals),
            windows=tuple(
                sorted(
                    (w for w in targeting(desired.windows) if not w.spec.suspend), key=window_key
                )
            ),
            scan_schedules=targeting(desired.scan_schedules),
        )
        self._script_jobs[id(found)] = targeting(desired.script_jobs)
        return found

    def script_jobs(self, applicable: Applicable) -> tuple[ScriptJob, ...]:
        return self._script_jobs.get(id(applicable), ())

    def decisions(self, applicable: Applicable) -> compliance.LazyMap[str, Decision]:
        """Decisions for `applicable`, computed on first use of each patch id."""
        found = self._decisions.get(id(applicable))
        if found is None:
            today, patch = self.today, self.observed.patch
            found = compliance.LazyMap(lambda p: decide(applicable, patch(p), today=today))
            self._decisions[id(applicable)] = found
        return found

    def evaluators(self, applicable: Applicable) -> tuple[compliance.BaselineEvaluator, ...]:
        found = self._evaluators.get(id(applicable))
        if found is None:
            decisions = self.decisions(applicable)
            found = tuple(compliance.BaselineEvaluator(b, decisions) for b in applicable.baselines)
            self._evaluators[id(applicable)] = found
        return found


T = TypeVar("T", bound=Document)


def _targets(obj: Document, device: DeviceView, desired: DesiredState) -> bool:
    spec_targets = references.targets_of(obj)
    return spec_targets is not None and targets.matches(
        spec_targets, owner=obj.tenant, device=device, desired=desired
    )


# --- the plan ---------------------------------------------------------------------------------


def plan(desired: DesiredState, observed: ObservedState, *, now: datetime) -> Plan:
    """Decide jobs, compliance and alerts for every device. Pure: same input, same plan.

    Overdue jobs are ended first (`jobs.settle`): a job never picked up expires, a started job
    past its run deadline fails (`timed-out`); either way the device is free to be planned again
    in this very pass (a verifying scan at once, installs in a later window occurrence).
    """
    settled = tuple(jobs.settle(job, now=now) for job in observed.jobs)
    ended = [s for s, job in zip(settled, observed.jobs, strict=True) if s is not job]
    ledger = _Ledger.of(settled)
    sets = PolicySets(desired, observed, today=now.date())
    window_states = {window_key(w): windows.evaluate(w.spec, now=now) for w in desired.windows}
    devices = sorted(
        (targets.effective_device(d, desired) for d in observed.devices),
        key=lambda d: (d.tenant, d.name, d.id),
    )
    applicable = {d.id: sets.applicable(d) for d in devices}
    population = _window_population(devices, applicable)

    builder = _PlanBuilder(
        desired=desired,
        observed=observed,
        ledger=ledger,
        sets=sets,
        window_states=window_states,
        population=population,
        now=now,
    )
    for device in devices:
        builder.device(device, applicable[device.id])
    builder.alerts.extend(builder.grouped_alerts())
    names = {d.id: d.name for d in observed.devices}
    builder.alerts.extend(_ledger_alerts(observed.jobs, names))
    before = {job.id: job for job in observed.jobs}
    builder.alerts.extend(_ended_alert(before[job.id], names, now=now) for job in ended)
    return Plan(
        revision=desired.revision,
        now=now,
        issue=tuple(builder.issue),
        cancel=tuple(sorted(builder.cancel)),
        supersede=tuple(sorted(builder.supersede)),
        expire=tuple(j.id for j in ended if j.end_reason is EndReason.NO_AGENT),
        time_out=tuple(j.id for j in ended if j.end_reason is EndReason.TIMED_OUT),
        compliance=tuple(builder.compliance),
        alerts=tuple(builder.alerts),
        devices=tuple(builder.summaries),
        windows=window_states,
        holding=_holding(builder.alerts, builder.failed),
    )


def _holding(alerts: Iterable[AlertSpec], failed: Mapping[str, frozenset[str]]) -> frozenset[str]:
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


def _ended_alert(job: JobView, names: Mapping[str, str], *, now: datetime) -> AlertSpec:
    """The alert for a job the controller ends at `now`: `JobExpired` or `JobTimedOut`, naming
    the device."""
    device = names.get(job.device_id, job.device_id)
    if jobs.has_expired(job, now=now):
        return AlertSpec(
            f"JobExpired:{job.id}",
            EventType.JOB_EXPIRED,
            AlertSeverity.WARNING,
            f"no-agent: {device} did not pick up {job.kind.value} job {job.id} before its deadline",
            device_id=job.device_id,
            job_id=job.id,
        )
    deadline = jobs.run_deadline(job)
    return AlertSpec(
        f"JobTimedOut:{job.id}",
        EventType.JOB_TIMED_OUT,
        AlertSeverity.CRITICAL if job.kind is JobKind.INSTALL else AlertSeverity.WARNING,
        f"timed-out: {job.kind.value} job {job.id} on {device} stopped in state "
        f"{job.state.value}; no final state by {deadline:%Y-%m-%d %H:%M}Z; "
        "the device is planned again",
        device_id=job.device_id,
        job_id=job.id,
    )


def _window_population(
    devices: Iterable[DeviceView], applicable: Mapping[str, Applicable]
) -> dict[str, int]:
    """How many patchable devices each window targets: the base of percentage rollout limits."""
    counts: dict[str, int] = defaultdict(int)
    for device in devices:
        if device.is_gateway:
            continue
        for window in applicable[device.id].windows:
            counts[window_key(window)] += 1
    return counts


class _PlanBuilder:
    """Accumulates one plan; each method handles one concern for one device."""

    def __init__(
        self,
        *,
        desired: DesiredState,
        observed: ObservedState,
        ledger: _Ledger,
        sets: PolicySets,
        window_states: Mapping[str, windows.WindowState],
        population: Mapping[str, int],
        now: datetime,
    ) -> None:
        self.desired = desired
        self.observed = observed
        self.ledger = ledger
        self.sets = sets
        self.window_states = window_states
        self.population = population
        self.now = now
        self.issue: list[JobSpec] = []
        self.cancel: set[str] = set()
        self.supersede: set[str] = set()
        self.compliance: list[BaselineCompliance] = []
        self.alerts: list[AlertSpec] = []
        self.failed: dict[str, frozenset[str]] = {}  # device id → patches whose install failed
        self.summaries: list[DeviceSummary] = []
        # info events grouped after the device loop (`grouped_alerts`): one alert per batch
        self.searched: dict[tuple[str, str, str], list[_Searched]] = defaultdict(list)
        self.initiated: dict[str, list[_Initiated]] = defaultdict(list)
        self._upcoming: dict[int, tuple[str, datetime] | None] = {}

    def device(self, device: DeviceView, applicable: Applicable) -> None:
        scan = self.observed.scans.get(device.id)
        jobs = self.ledger.by_device.get(device.id, [])
        decisions = self.sets.decisions(applicable)
        history = device_history(jobs) if jobs else _NO_HISTORY
        if history.failed:
            self.failed[device.id] = history.failed
        self.compliance.extend(
            evaluator.evaluate(device_id=device.id, scan=scan, history=history, now=self.now)
            for evaluator in self.sets.evaluators(applicable)
        )
        installable: list[str] = []
        pending: list[str] = []
        missing = scan.missing if scan else ()
        grouping = self.sets.grouping(applicable, missing)
        for patch_id in missing:
            decision = grouping.decision(patch_id, decisions)
            if decision.installable:
                installable.append(patch_id)
            elif decision.pending_approval:
                pending.append(patch_id)
        self._cancel_stale_installs(jobs, installable)
        self._supersede_scans(jobs, scan)
        self._scan(device, applicable, scan, jobs)
        issued, hold = self._install(device, applicable, installable)
        self._script_jobs(device, applicable)
        self._reboot_alert(device, scan, jobs)
        self._silent_with_install(device, jobs)
        upcoming = self._next_window(applicable)
        self.summaries.append(
            DeviceSummary(
                device.id,
                tuple(installable),
                tuple(pending),
                upcoming[0] if upcoming else None,
                upcoming[1] if upcoming else None,
                issued,
                hold,
            )
        )

    def _emit(self, job: JobSpec) -> None:
        self.issue.append(job)
        self.ledger.add(job)

    def _cancel_stale_installs(self, jobs: Iterable[JobView], installable: list[str]) -> None:
        """An install not yet taken by the agent is cancelled (`not-installable`) when its
        patches are no longer installable (an approval was revoked, a baseline now excludes
        one)."""
        allowed = set(installable)
        for job in jobs:
            cancellable = (
                job.kind is JobKind.INSTALL and job.state.in_flight and not job.state.started
            )
            if cancellable and not set(job.patch_ids) <= allowed:
                self.cancel.add(job.id)
                self.ledger.in_flight.discard(job.device_id)

    def _supersede_scans(self, jobs: list[JobView], scan: ScanView | None) -> None:
        """A scan job the agent has not taken is moot once a scan the server received after the
        job was issued is there: it ends (`superseded`), and frees the device for its install
        in this very pass (issue 13.9: the outcome must not depend on which request came
        first, the agent's report or the reconcile that issued the scan)."""
        if scan is None:
            return
        moot = [
            job
            for job in jobs
            if job.kind is JobKind.SCAN
            and job.state.in_flight
            and not job.state.started
            and job.created_at is not None
            and scan.fresh_at >= job.created_at
        ]
        if not moot:
            return
        self.supersede.update(job.id for job in moot)
        ended = {job.id for job in moot} | self.cancel
        if not any(job.state.in_flight and job.id not in ended for job in jobs):
            self.ledger.in_flight.discard(jobs[0].device_id)

    def _scan(
        self,
        device: DeviceView,
        applicable: Applicable,
        scan: ScanView | None,
        device_jobs: list[JobView],
    ) -> None:
        if device.id in self.ledger.in_flight:
            return
        occasion = _scan_occasion(scan, device_jobs, applicable, now=self.now)
        if occasion is None:
            return
        occasion = _retry_occasion(device.id, occasion, device_jobs, now=self.now)
        if occasion is None:
            return
        reason, key = occasion
        job = JobSpec(
            id=job_id(device.id, JobKind.SCAN, (), key),
            device_id=device.id,
            kind=JobKind.SCAN,
            reason=reason,
            occurrence=key,
            deadline=self.now + SCAN_DEADLINE,
            revision=self.desired.revision,
            run_timeout=jobs.run_timeout(JobKind.SCAN),
        )
        if job.id in self.ledger.ids:
            return
        self._emit(job)
        self.initiated[device.tenant].append(_Initiated(device, job.id, reason, key))

    def _install(
        self, device: DeviceView, applicable: Applicable, installable: list[str]
    ) -> tuple[str | None, str | None]:
        """Issue the device's install job if rule 8 allows it now: (the job id, None), or
        (None, why not) when an occurrence accepts installs but the device gets none."""
        if device.is_gateway or not installable or device.id in self.ledger.in_flight:
            return None, None
        chosen = self._open_occurrence(device, applicable)
        if chosen is None:
            return None, None
        window, occurrence, deadline = chosen
        key = window_key(window)
        pre_script = self._script(window, window.spec.pre_script)
        post_script = self._script(window, window.spec.post_script)
        attempted = self.ledger.attempted.get((device.id, key, occurrence.key))
        fresh = [p for p in installable if p not in attempted] if attempted else installable
        # apt installs `name=version` pairs: Debian/Ubuntu advisories go as their packages
        patches = tuple(self.sets.job_patches(fresh))
        if not patches:
            return None, f"already attempted in PatchWindow {key} occurrence {occurrence.key}"
        if not device.is_online(now=self.now):
            self._offline_in_window(device, window, occurrence.key)
            return None, "the device is offline (no check-in within two poll intervals)"
        held = self._rollout_hold(window, occurrence.key)
        if held is not None:
            return None, held
        job_key = job_id(device.id, JobKind.INSTALL, patches, f"{key}@{occurrence.key}")
        self._emit(
            JobSpec(
                id=job_key,
                device_id=device.id,
                kind=JobKind.INSTALL,
                reason=f"PatchWindow {key} occurrence {occurrence.key}",
                patch_ids=patches,
                window=key,
                occurrence=occurrence.key,
                reboot=window.spec.reboot,
                pre_script=pre_script,
                post_script=post_script,
                deadline=deadline,
                revision=self.desired.revision,
                run_timeout=jobs.run_timeout(
                    JobKind.INSTALL,
                    window_duration=window.spec.duration,
                    reboot=window.spec.reboot,
                    scripts=(pre_script, post_script),
                ),
            )
        )
        self.searched[(device.tenant, key, occurrence.key)].append(
            _Searched(device, job_key, patches)
        )
        return job_key, None

    def grouped_alerts(self) -> list[AlertSpec]:
        """The pass's info events, one alert per batch instead of one per device (issue 14.3):
        one `Search` per (tenant, PatchWindow occurrence) and one `Initiate` per tenant, in
        key order. A batch of one device keeps the per-device alert (its message, key and
        device link). A batch's key digests its job ids, which are deterministic: a pass that
        repeats the same decision issues no job and so raises nothing new."""
        alerts = [
            _search_alert(tenant, window, occurrence, batch)
            for (tenant, window, occurrence), batch in sorted(self.searched.items())
        ]
        alerts.extend(
            _initiate_alert(tenant, batch) for tenant, batch in sorted(self.initiated.items())
        )
        return alerts

    def _rollout_hold(self, window: PatchWindow, occurrence: str) -> str | None:
        """Why the occurrence's rollout limits start no install now (None: they allow one)."""
        key = window_key(window)
        slot = (key, occurrence)
        targeted = self.population.get(key, 0)
        rollout = window.spec.rollout
        limit = rollout.max_concurrent.of(targeted)
        if self.ledger.running.get(slot, 0) >= limit:
            return (
                f"PatchWindow {key} has {limit} install(s) running (rollout.maxConcurrent); "
                "it starts when one finishes"
            )
        failures = len(self.ledger.failed_devices.get(slot, ()))
        allowed = rollout.max_failures.of(targeted)
        if failures > allowed:
            return (
                f"PatchWindow {key} occurrence {occurrence} stopped starting installs: "
                f"{failures} device(s) failed (rollout.maxFailures {allowed})"
            )
        return None

    def _open_occurrence(
        self, device: DeviceView, applicable: Applicable
    ) -> tuple[PatchWindow, windows.Occurrence, datetime] | None:
        """The window occurrence a device may be patched in now: an open one before its cutoff,
        else a missed one it may still catch up on."""
        for window in applicable.windows:
            current = self.window_states[window_key(window)].current
            if current is not None and current.accepts_new_installs(self.now):
                return window, current, current.end
        for window in applicable.windows:
            missed = self.window_states[window_key(window)].catch_up
            if window.spec.missed_window is not MissedWindow.CATCH_UP or missed is None:
                continue
            if (device.id, window_key(window), missed.key) in self.ledger.attempted:
                continue
            return window, missed, missed.end + window.spec.catch_up_within
        return None

    def _offline_in_window(self, device: DeviceView, window: PatchWindow, occurrence: str) -> None:
        self.alerts.append(
            AlertSpec(
                f"AgentOfflineInWindow:{device.id}:{window_key(window)}@{occurrence}",
                EventType.AGENT_OFFLINE_IN_WINDOW,
                AlertSeverity.WARNING,
                f"{device.name} is offline during PatchWindow {window_key(window)} "
                "and has approved patches waiting",
                device_id=device.id,
            )
        )

    def _silent_with_install(self, device: DeviceView, device_jobs: list[JobView]) -> None:
        """A device that went silent (offline by rule 8) while its install job is in flight
        raises `AgentOfflineInWindow` naming it, during the window, not only the job's expiry
        or time-out later; it resolves when the device checks in again or the job ends."""
        if device.is_online(now=self.now):
            return
        for job in device_jobs:
            if job.kind is not JobKind.INSTALL or not job.state.in_flight:
                continue
            seen = f"{device.last_seen:%Y-%m-%d %H:%M}Z" if device.last_seen else "never"
            self.alerts.append(
                AlertSpec(
                    f"AgentOfflineInWindow:{device.id}:{job.window}@{job.occurrence}",
                    EventType.AGENT_OFFLINE_IN_WINDOW,
                    AlertSeverity.WARNING,
                    f"{device.name} went silent (last seen {seen}) during PatchWindow "
                    f"{job.window} with install job {job.id} {job.state.value}",
                    device_id=device.id,
                    job_id=job.id,
                )
            )

    def _script(self, owner: PatchWindow | ScriptJob, name: str | None) -> ScriptPayload | None:
        if name is None:
            return None
        script = self.desired.visible(Script, owner.tenant, name)
        return ScriptPayload.of(script) if script is not None else None

    def _script_jobs(self, device: DeviceView, applicable: Applicable) -> None:
        for script_job in self.sets.script_jobs(applicable):
            if device.id in self.ledger.in_flight or device.is_gateway:
                return
            start = _latest_start(script_job, now=self.now)
            if start is None:
                continue
            payload = self._script(script_job, script_job.spec.script)
            if payload is None:
                continue
            occasion = (
                f"{script_job.tenant or '*'}/{script_job.name}@{windows.occurrence_key(start)}"
            )
            job = JobSpec(
                id=job_id(device.id, JobKind.SCRIPT, (), occasion),
                device_id=device.id,
                kind=JobKind.SCRIPT,
                reason=f"ScriptJob {occasion}",
                occurrence=occasion,
                script=payload,
                deadline=start + SCRIPT_JOB_LOOKBACK,
                revision=self.desired.revision,
                run_timeout=jobs.run_timeout(JobKind.SCRIPT, scripts=(payload,)),
            )
            if job.id not in self.ledger.ids:
                self._emit(job)

    def _reboot_alert(self, device: DeviceView, scan: ScanView | None, jobs: list[JobView]) -> None:
        latest = _latest_finished_install(jobs)
        if scan is None or latest is None or not scan.reboot_required:
            return
        # both on the server's clock: when the scan arrived, when the job's last event did
        if latest.updated_at is not None and scan.fresh_at >= latest.updated_at:
            self.alerts.append(
                AlertSpec(
                    f"RebootPending:{device.id}:{latest.id}",
                    EventType.REBOOT_PENDING,
                    AlertSeverity.WARNING,
                    f"{device.name}: {REBOOT_PENDING_MESSAGE}",
                    device_id=device.id,
                    job_id=latest.id,
                )
            )

    def _next_window(self, applicable: Applicable) -> tuple[str, datetime] | None:
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


def _scan_occasion(
    scan: ScanView | None, jobs: list[JobView], applicable: Applicable, *, now: datetime
) -> tuple[str, str] | None:
    """Rule 7: why a scan is due now (reason, occasion key), or None."""
    latest_install = _latest_finished_install(jobs)
    if latest_install is not None and (
        scan is None
        or (latest_install.updated_at is not None and scan.fresh_at < latest_install.updated_at)
    ):
        return f"verify install {latest_install.id}", f"after:{latest_install.id}"
    if scan is None:
        scans = [j for j in jobs if j.kind is JobKind.SCAN]
        if not scans:
            return "initial scan after enrolment", "initial"
        return "retry initial scan", f"retry:{scans[-1].id}"
    every = min((s.spec.every for s in applicable.scan_schedules), default=DEFAULT_SCAN_INTERVAL)
    if now - scan.fresh_at >= every:  # server clock: an agent's wrong clock neither hides
        stamp = windows.occurrence_key(scan.fresh_at)  # nor repeats a due scan
        return f"scan due every {every} (last {stamp})", f"due:{stamp}"
    return None


def _retry_occasion(
    device_id: str, occasion: tuple[str, str], jobs_of_device: list[JobView], *, now: datetime
) -> tuple[str, str] | None:
    """The occasion to issue a scan for, following retries: while the scan job of an occasion
    exists and ended without a scan (failed, expired, timed out, cancelled), the next is its
    retry (`retry:<job id>`). A scan the agent itself failed, or an operator cancelled, is
    retried `SCAN_RETRY_AFTER` later; one the controller ended (it waited for its deadline
    already) at once. None: wait.
    """
    by_id = {job.id: job for job in jobs_of_device if job.kind is JobKind.SCAN}
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


def _latest_start(script_job: ScriptJob, *, now: datetime) -> datetime | None:
    """The most recent scheduled start in the look-back period, if any."""
    latest = None
    cursor = now - SCRIPT_JOB_LOOKBACK
    while True:
        start = windows.next_start(
            script_job.spec.recurrence, script_job.spec.timezone, after=cursor
        )
        if start is None or start > now:
            return latest
        latest, cursor = start, start


def _ledger_alerts(jobs: Iterable[JobView], names: Mapping[str, str]) -> list[AlertSpec]:
    """Alerts that follow from what agents reported about their jobs, naming the device."""
    alerts: list[AlertSpec] = []
    for job in jobs:
        if job.kind is not JobKind.INSTALL:
            continue
        device = names.get(job.device_id, job.device_id)
        if job.state in _DOWNLOADED:
            alerts.append(
                AlertSpec(
                    f"DownloadInitiated:{job.id}",
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
                    f"InstallComplete:{job.id}",
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
                f"InstallFailed:{job.id}:{patch}",
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


_DOWNLOADED = frozenset(
    {
        JobState.DOWNLOADING,
        JobState.INSTALLING,
        JobState.REBOOTING,
        JobState.SUCCEEDED,
        JobState.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class _Searched:
    """One install issued in a pass: which device, which job, which patches."""

    device: DeviceView
    job_id: str
    patches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Initiated:
    """One scan issued in a pass: which device, which job, why (reason, occasion key)."""

    device: DeviceView
    job_id: str
    reason: str
    occasion: str


def _search_alert(tenant: str, window: str, occurrence: str, batch: list[_Searched]) -> AlertSpec:
    """`Search` for the installs one pass issued in one tenant's PatchWindow occurrence."""
    if len(batch) == 1:
        (one,) = batch
        return AlertSpec(
            f"Search:{one.device.id}:{_digest(one.patches)}",
            EventType.SEARCH,
            AlertSeverity.INFO,
            f"{len(one.patches)} missing patch(es) found and approved on {one.device.name}",
            device_id=one.device.id,
        )
    patches = sorted({p for item in batch for p in item.patches})
    return AlertSpec(
        f"Search:{tenant}:{window}@{occurrence}:{_digest(item.job_id for item in batch)}",
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


def _initiate_alert(tenant: str, batch: list[_Initiated]) -> AlertSpec:
    """`Initiate` for the scans one pass issued in one tenant; details count them by occasion
    (`initial`, `retry`, `due`, `after`: rule 7's occasions)."""
    if len(batch) == 1:
        (one,) = batch
        return AlertSpec(
            f"Initiate:{one.job_id}",
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
        f"Initiate:{tenant}:{_digest(item.job_id for item in batch)}",
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


def _sample(batch: list[_Searched] | list[_Initiated]) -> str:
    """The first `GROUP_SAMPLE` device names (the planner's device order), then "and N more"."""
    names = ", ".join(item.device.name for item in batch[:GROUP_SAMPLE])
    rest = len(batch) - GROUP_SAMPLE
    return f"{names} and {rest} more" if rest > 0 else names


def _digest(patch_ids: Iterable[str]) -> str:
    return hashlib.sha256(",".join(sorted(patch_ids)).encode()).hexdigest()[:12]


__all__ = ["GROUP_SAMPLE", "AlertSpec", "DeviceSummary", "Plan", "object_ref", "plan", "window_key"]
