"""Why each patch of a device is (or is not) required, approved and installable, and when it will
be installed. Purely computational: the same decisions the planner takes, with their reasons.

Explain runs the planner itself (`plan.plan` on the same inputs) and reads its answer for the
device: each patch's compliance state (`failed`, `installed-pending-reboot`, ...) is the one the
compliance records get, and "will be installed now" is said only when that pass issues the
device's install job; otherwise the planner's own reason (already attempted in the occurrence,
a rollout limit, offline) is given. Jobs: a job in flight blocks new installs until it finishes
or reaches its deadline; an overdue job (`jobs.settle`) is ended by the next pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from controller.core import jobs, targets, windows
from controller.core.compliance import (
    BaselineCompliance,
    ComplianceState,
    PatchState,
)
from controller.core.decisions import Applicable, Decision, object_ref
from controller.core.desired import DesiredState
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
)
from controller.core.plan import DeviceSummary, PolicySets, plan, plan_alone, window_key


@dataclass(frozen=True, slots=True)
class PatchExplanation:
    patch_id: str
    status: str  # missing | installed: what the scan says
    decision: Decision
    verdict: str  # one sentence: what happens to this patch and why
    # the compliance state the planner gives it (DESIGN.md 3.6), None when no baseline requires
    # or rejects it: installed | installed-pending-reboot | missing | failed | installed-rejected
    # | not-applicable
    state: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceExplanation:
    device: DeviceView
    online: bool
    scanned_at: datetime | None
    policies: tuple[str, ...]  # object refs of everything that targets the device
    next_window: str | None
    patches: tuple[PatchExplanation, ...]
    jobs: tuple[str, ...] = ()  # one sentence per unfinished or overdue job of the device
    # why there is no install opportunity (None when `next_window` names one): a gateway, no
    # PatchWindow targeting the device, or none of its windows having an occurrence ahead
    unscheduled: str | None = None


GATEWAY = "gateway: never patched"
NO_WINDOW = "no patch window targets this device"


@dataclass(frozen=True, slots=True)
class _Schedule:
    """When installs can happen for the device: now (an open occurrence), or next."""

    now: str | None  # "now, in PatchWindow ..." when an occurrence accepts installs
    now_slot: tuple[str, str] | None  # (window key, occurrence key) of that occurrence
    next: str | None  # "in PatchWindow ... at ..." for the next occurrence to start
    online: bool = True  # the planner installs only on devices that checked in lately
    unscheduled: str | None = None  # why neither `now` nor `next` is set
    issued: frozenset[str] = frozenset()  # patches of the install job the plan issues now
    issued_job: str | None = None
    hold: str | None = None  # the planner's reason for issuing no install now


def _states(
    records: Iterable[BaselineCompliance], device_id: str, scan: ScanView | None
) -> dict[str, str]:
    """Patch id → the compliance state the plan gives it on the device (the worst over its
    baselines: a patch one baseline finds failed is failed)."""
    found: dict[str, str] = {}
    if scan is None:
        return found
    for record in records:
        if record.device_id != device_id or record.state is ComplianceState.UNKNOWN:
            continue
        listed = {patch: state.value for patch, state in record.findings}
        for patch_id in scan.installed:
            found.setdefault(patch_id, PatchState.INSTALLED.value)
        found.update(listed)
    return found


def _not_applicable(decision: Decision) -> str | None:
    """A required patch a newer one supersedes: compliance counts it `not-applicable` without
    listing it among the findings, so explain names the state itself."""
    return PatchState.NOT_APPLICABLE.value if decision.required and decision.superseded else None


def explain(
    desired: DesiredState,
    observed: ObservedState,
    device: DeviceView,
    *,
    now: datetime,
    fleet: Callable[[], ObservedState] | None = None,
) -> DeviceExplanation:
    """Explain every scanned patch of `device` under `desired` at `now`. `fleet`: when
    `observed` holds the ledger of `device` alone, the observed state with the fleet's, asked
    only when the fleet must be planned (the device's plan reads rollout limits)."""
    device = targets.effective_device(device, desired)
    sets = PolicySets(desired, observed, today=now.date())
    applicable = sets.applicable(device)
    scan = observed.scans.get(device.id)
    decisions = sets.decisions(applicable)
    grouping = sets.grouping(applicable, scan.missing if scan else ())
    # The planner's own verdict for this device (compliance, whether an install is issued this
    # occurrence), so explain never says what the plan does not do: planned alone when no
    # other device bears on it, else as part of the fleet's plan.
    alone = plan_alone(desired, observed, device, now=now, sets=sets)
    if alone is not None:
        summary: DeviceSummary | None = alone.summary
        compliance = alone.compliance
    else:
        planned = plan(desired, observed if fleet is None else fleet(), now=now)
        summary = next((d for d in planned.devices if d.device_id == device.id), None)
        compliance = planned.compliance
    schedule = _schedule(applicable, device, now=now, summary=summary)
    device_jobs = list(observed.jobs.of_device(device.id))
    context = _JobContext.of(device_jobs, now=now)
    states = _states(compliance, device.id, scan)
    patches = [
        _explain_patch(
            patch_id,
            status,
            grouping.decision(patch_id, decisions) if status == "missing" else decisions[patch_id],
            schedule,
            context,
            states.get(patch_id) or _not_applicable(decisions[patch_id]),
            grouping.members.get(patch_id),
        )
        for status, ids in (
            ("missing", scan.missing if scan else ()),
            ("installed", scan.installed if scan else ()),
        )
        for patch_id in ids
    ]
    return DeviceExplanation(
        device=device,
        online=device.is_online(now=now),
        scanned_at=scan.scanned_at if scan else None,
        policies=tuple(
            object_ref(o)
            for o in (
                *applicable.baselines,
                *applicable.whitelists,
                *applicable.approvals,
                *applicable.windows,
                *applicable.scan_schedules,
            )
        ),
        next_window=schedule.now or schedule.next,
        patches=tuple(patches),
        jobs=tuple(_job_sentence(job, now=now) for job in (*context.overdue, *context.running)),
        unscheduled=schedule.unscheduled,
    )


@dataclass(frozen=True, slots=True)
class _JobContext:
    """The device's jobs as the next pass will see them."""

    running: tuple[JobView, ...]  # in flight and within their deadlines
    overdue: tuple[JobView, ...]  # in flight but past a deadline: the next pass ends them
    settled: tuple[JobView, ...]  # every job, overdue ones ended

    @classmethod
    def of(cls, device_jobs: list[JobView], *, now: datetime) -> _JobContext:
        settled = tuple(jobs.settle(job, now=now) for job in device_jobs)
        overdue = tuple(j for j, s in zip(device_jobs, settled, strict=True) if s is not j)
        running = tuple(s for s in settled if s.state.in_flight)
        return cls(running=running, overdue=overdue, settled=settled)

    def attempted(self, patch_id: str, slot: tuple[str, str] | None) -> JobView | None:
        """The finished install of `patch_id` in the occurrence `slot`, if any."""
        if slot is None:
            return None
        found = [
            job
            for job in self.settled
            if job.kind is JobKind.INSTALL
            and (job.window, job.occurrence) == slot
            and patch_id in job.patch_ids
            and not job.state.in_flight
        ]
        return found[-1] if found else None


def _schedule(
    applicable: Applicable, device: DeviceView, *, now: datetime, summary: DeviceSummary | None
) -> _Schedule:
    if device.is_gateway:  # DESIGN 1: the planner never installs on a gateway
        return _Schedule(None, None, None, unscheduled=GATEWAY)
    if not applicable.windows:
        return _Schedule(None, None, None, unscheduled=NO_WINDOW)
    online = device.is_online(now=now)
    states = {window_key(w): windows.evaluate(w.spec, now=now) for w in applicable.windows}
    current_text, slot = None, None
    for window in applicable.windows:
        current = states[window_key(window)].current
        if current is not None and current.accepts_new_installs(now):
            until = _in_zone(current.cutoff_at, window.spec.timezone)
            current_text = (
                f"now, in PatchWindow {window_key(window)} (installs start until {until})"
            )
            slot = (window_key(window), current.key)
            break
    zones = {window_key(w): w.spec.timezone for w in applicable.windows}
    upcoming = [
        (state.upcoming.start, key) for key, state in states.items() if state.upcoming is not None
    ]
    next_text = None
    if upcoming:
        start, key = min(upcoming)
        next_text = f"in PatchWindow {key} at {_in_zone(start, zones[key])}"
    issued_job = summary.install_job if summary is not None else None
    ended = ", ".join(f"PatchWindow {key}" for key in zones)
    return _Schedule(
        current_text,
        slot,
        next_text,
        online,
        unscheduled=None if current_text or next_text else f"no occurrence ahead in {ended}",
        issued=frozenset(summary.installable) if issued_job and summary else frozenset(),
        issued_job=issued_job,
        hold=summary.install_hold if summary is not None else None,
    )


def _job_sentence(job: JobView, *, now: datetime) -> str:
    """One sentence on an unfinished job: its state and its deadline, or why it is overdue."""
    ending = jobs.ended_at(job, now=now)
    label = f"{job.kind.value} job {job.id}"
    if ending is not None:
        _, reason = ending
        deadline = jobs.run_deadline(job) if reason == jobs.EndReason.TIMED_OUT else job.deadline
        return (
            f"{label} is overdue ({reason}: still {job.state.value} past its deadline "
            f"{_stamp(deadline)}); the next reconcile ends it and plans the device again"
        )
    if job.state.started:
        return f"{label} is {job.state.value}; it times out at {_stamp(jobs.run_deadline(job))}"
    return f"{label} is {job.state.value}, waiting for the agent until {_stamp(job.deadline)}"


def _in_zone(moment: datetime, timezone: str) -> str:
    """A window's time on its own wall clock, then in UTC: `2026-12-06 02:00 Europe/Berlin
    (01:00Z)`; operators think of a window in the zone they wrote it in (issue 16.6)."""
    if timezone in {"UTC", "Etc/UTC"}:
        return f"{moment:%Y-%m-%d %H:%M}Z"
    local = moment.astimezone(ZoneInfo(timezone))
    utc = f"{moment:%H:%M}Z" if local.date() == moment.date() else f"{moment:%Y-%m-%d %H:%M}Z"
    return f"{local:%Y-%m-%d %H:%M} {timezone} ({utc})"


def _stamp(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}Z" if moment is not None else "no deadline"


def _explain_patch(
    patch_id: str,
    status: str,
    decision: Decision,
    schedule: _Schedule,
    context: _JobContext,
    state: str | None,
    members: tuple[str, ...] | None = None,
) -> PatchExplanation:
    verdict = _verdict(patch_id, status, decision, schedule, context)
    if members is not None and decision.installable:
        verdict = _through_packages(decision, members, schedule, context)
    if state == PatchState.FAILED.value:
        verdict = f"failed: {_failure(patch_id, context)}; {verdict}"
    return PatchExplanation(patch_id, status, decision, verdict, state)


def _through_packages(
    decision: Decision, members: tuple[str, ...], schedule: _Schedule, context: _JobContext
) -> str:
    """An approved Debian/Ubuntu advisory: apt installs its packages, not its id
    (`controller.core.advisories`)."""
    required = (
        f"required by {', '.join(decision.required_by)}" if decision.required else "not required"
    )
    approved = f"{required}; approved by {', '.join(decision.approved_by)}"
    if not members:
        return (
            f"{approved}; no package update offered to the device carries its fix yet "
            "(its archives or the catalogue's Packages indexes lack the fixed versions)"
        )
    return f"{approved}; installed as {', '.join(members)}: {_when(members[0], schedule, context)}"


def _failure(patch_id: str, context: _JobContext) -> str:
    """The last failed install of the patch and the agent's reason."""
    for job in reversed(context.settled):
        if job.kind is JobKind.INSTALL and job.results.get(patch_id) is PatchResult.FAILED:
            return f"job {job.id} reported {job.reasons.get(patch_id) or 'no reason'}"
    return "its last install attempt failed"


def _verdict(  # noqa: PLR0911 - one sentence per case
    patch_id: str, status: str, decision: Decision, schedule: _Schedule, context: _JobContext
) -> str:
    required = (
        f"required by {', '.join(decision.required_by)}" if decision.required else "not required"
    )
    if status == "installed":
        if decision.rejected:
            return f"installed but rejected by {', '.join(decision.excluded_by)}"
        return f"installed; {required}"
    if decision.rejected:
        return f"never installed: excluded by {', '.join(decision.excluded_by)}"
    if decision.superseded:
        return "not applicable: superseded by a newer patch"
    if decision.wrong_os:
        return "not applicable: the patch is for another operating system"
    if not decision.approved:
        return f"{required}; waiting for approval (no Approval or Whitelist id covers it)"
    approved = f"{required}; approved by {', '.join(decision.approved_by)}"
    return f"{approved}; {_when(patch_id, schedule, context)}"


def _when(patch_id: str, schedule: _Schedule, context: _JobContext) -> str:
    """When an approved, missing patch will be installed, given the device's jobs."""
    later = f"will be installed {schedule.next}" if schedule.next else "no later window is planned"
    for job in context.running:
        if job.kind is JobKind.INSTALL and patch_id in job.patch_ids:
            return f"being installed by job {job.id} ({job.state.value})"
    for job in context.overdue:
        if job.kind is JobKind.INSTALL and patch_id in job.patch_ids:
            return f"its install job {job.id} is overdue (still {job.state.value}); {later}"
    if schedule.now is None:
        return later if schedule.next else (schedule.unscheduled or NO_WINDOW)
    tried = context.attempted(patch_id, schedule.now_slot)
    if tried is not None:
        return (
            f"already attempted in this occurrence (job {tried.id}, {tried.state.value}); {later}"
        )
    return _now(patch_id, schedule.now, schedule, context, later=later)


def _now(patch_id: str, now: str, schedule: _Schedule, context: _JobContext, *, later: str) -> str:
    """An open occurrence accepts the patch: now when the planner issues the install in this
    pass, else why not (a job in flight, the device's absence, the planner's own reason)."""
    afterwards = now.removeprefix("now, ")  # "in PatchWindow ... (installs start until ...)"
    if context.running:
        blocking = context.running[0]
        return (
            f"waits for {blocking.kind.value} job {blocking.id} ({blocking.state.value}) to "
            f"finish; then installable {afterwards}"
        )
    if context.overdue:
        stuck = context.overdue[0]
        return (
            f"blocked by overdue {stuck.kind.value} job {stuck.id} until the next reconcile "
            f"ends it; then installable {afterwards}"
        )
    if not schedule.online:
        return f"will be installed {now}, when the device checks in (it is offline)"
    if patch_id in schedule.issued:
        return f"will be installed {now}"  # the plan issues its install job in this pass
    if schedule.hold is not None:
        return f"not installed now: {schedule.hold}; {later}"
    # the planner issues nothing for it now and gives no reason: never claim "now"
    return f"not installed in this pass; {later}"
