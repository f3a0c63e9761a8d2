"""The planner: `plan(desired, observed, now=...) -> Plan`.

Purely computational, no side effects: the desired state (policy at a revision), the observed
state (devices, scans, the job ledger, the catalogue) and the instant go in; the jobs to issue,
cancel and expire, the compliance of every device and the alerts to raise come out. The runtime
applies a plan once, in one transaction.

The story of a pass, each step a module of `controller.core.planning`: settle overdue jobs and
index the ledger (`ledger`), find the policy set of every device (`policysets`), evaluate the
windows, plan each device in order (`devices`: compliance, scans, installs, scripts, its alerts),
then assemble the plan with the fleet's alerts (`fleet`, `alerts`).

Speed: decisions depend only on the policy set that targets a device and on the patch, so they are
computed once per (policy set, patch) and shared; target matching is computed once per distinct set
of device facts. A fleet of 100,000 devices typically has a few dozen policy sets.
`controller.core.incremental` re-plans only the devices whose inputs changed.
"""

from __future__ import annotations

from datetime import datetime

from controller.core import windows
from controller.core.decisions import object_ref
from controller.core.desired import DesiredState
from controller.core.observed import DeviceView, JobLedger, ObservedState
from controller.core.planning import alerts, fleet
from controller.core.planning.devices import DevicePlan, PassFacts, plan_device
from controller.core.planning.ledger import Ledger, device_history
from controller.core.planning.policysets import PolicySets
from controller.core.planning.values import (
    CONDITION_TYPES,
    GROUP_SAMPLE,
    REBOOT_PENDING_MESSAGE,
    SCAN_DEADLINE,
    SCAN_RETRY_AFTER,
    SCRIPT_JOB_LOOKBACK,
    AlertSpec,
    DeviceSummary,
    Plan,
    window_key,
)


def plan(desired: DesiredState, observed: ObservedState, *, now: datetime) -> Plan:
    """Decide jobs, compliance and alerts for every device. Pure: same input, same plan.

    Overdue jobs are ended first (`jobs.settle`): a job never picked up expires, a started job
    past its run deadline fails (`timed-out`); either way the device is free to be planned again
    in this very pass (a verifying scan at once, installs in a later window occurrence).
    """
    settled = fleet.Settled.of(observed.jobs, now=now)
    sets = PolicySets(desired, observed, today=now.date())
    window_states = {window_key(w): windows.evaluate(w.spec, now=now) for w in desired.windows}
    devices = fleet.in_order(observed, desired)
    applicable = {d.id: sets.applicable(d) for d in devices}
    facts = PassFacts(
        desired=desired,
        scans=observed.scans,
        ledger=Ledger.of(settled.jobs),
        sets=sets,
        window_states=window_states,
        population=fleet.population(devices, applicable),
        now=now,
    )
    running = fleet.counting_installs(facts.ledger)
    device_plans: list[DevicePlan] = []
    for device in devices:
        device_plan = plan_device(facts, device, applicable[device.id], running)
        fleet.count_issued(running, device_plan)
        device_plans.append(device_plan)
    names = {d.id: d.name for d in observed.devices}
    return fleet.assemble(
        desired,
        now=now,
        settled=settled,
        device_plans=device_plans,
        window_states=window_states,
        own=fleet.own_alerts(device_plans, settled, names, now=now),
        reported=alerts.reported(observed.jobs, names),
    )


def plan_alone(
    desired: DesiredState,
    observed: ObservedState,
    device: DeviceView,
    *,
    now: datetime,
    sets: PolicySets | None = None,
) -> DevicePlan | None:
    """`device`'s plan in `plan(desired, observed, now=now)`, made without planning the rest of
    the fleet (`device` as policy sees it, `targets.effective_device`; `sets`: the pass's
    `PolicySets`, if made already). None when that plan reads a window's rollout limits: the
    installs the same pass issues to the devices planned before it count against them
    (`maxConcurrent`, DESIGN.md 3.8), so only planning the fleet tells; nothing else couples
    devices: its compliance, scans, scripts and alerts are its own, and of the ledger it reads
    only its own jobs (the fleet's count only against rollout limits; a job id names its
    device). `explain` asks this first: the whole plan costs seconds at 100,000 devices."""
    own = observed.jobs.of_device(device.id)
    settled = fleet.Settled.of(JobLedger({device.id: own} if own else {}), now=now)
    sets = sets if sets is not None else PolicySets(desired, observed, today=now.date())
    facts = PassFacts(
        desired=desired,
        scans=observed.scans,
        ledger=Ledger.of(settled.jobs),
        sets=sets,
        window_states={window_key(w): windows.evaluate(w.spec, now=now) for w in desired.windows},
        population={},  # read by rollout limits only, and a plan that reads them is not answered
        now=now,
    )
    running = fleet.counting_installs(facts.ledger)
    found = plan_device(facts, device, sets.applicable(device), running)
    return None if found.rollout_window is not None else found


__all__ = [
    "CONDITION_TYPES",
    "GROUP_SAMPLE",
    "REBOOT_PENDING_MESSAGE",
    "SCAN_DEADLINE",
    "SCAN_RETRY_AFTER",
    "SCRIPT_JOB_LOOKBACK",
    "AlertSpec",
    "DevicePlan",
    "DeviceSummary",
    "Plan",
    "PolicySets",
    "device_history",
    "object_ref",
    "plan",
    "plan_alone",
    "window_key",
]
