"""The fleet-level parts of a pass: settling overdue jobs, the devices in planning order, window
populations, and the assembly of device plans with the fleet's alerts into one `Plan`.

Purely computational, no side effects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.core import jobs, targets, windows
from controller.core.decisions import Applicable
from controller.core.desired import DesiredState
from controller.core.jobs import EndReason
from controller.core.observed import DeviceView, JobKind, JobView, ObservedState
from controller.core.planning import alerts
from controller.core.planning.devices import DevicePlan
from controller.core.planning.ledger import Ledger, Slot
from controller.core.planning.values import Plan, window_key


@dataclass(frozen=True, slots=True)
class Settled:
    """The ledger once overdue jobs are ended at `now` (`jobs.settle`), and which ended:
    `ended` pairs each ended job as observed with the job as settled."""

    jobs: tuple[JobView, ...]
    ended: tuple[tuple[JobView, JobView], ...]

    @classmethod
    def of(cls, observed_jobs: Sequence[JobView], *, now: datetime) -> Settled:
        settled = tuple(jobs.settle(job, now=now) for job in observed_jobs)
        ended = tuple(
            (job, s) for s, job in zip(settled, observed_jobs, strict=True) if s is not job
        )
        return cls(jobs=settled, ended=ended)


def in_order(observed: ObservedState, desired: DesiredState) -> list[DeviceView]:
    """The devices as policy sees them (declared labels merged), in the planner's order."""
    return sorted(
        (targets.effective_device(d, desired) for d in observed.devices),
        key=lambda d: (d.tenant, d.name, d.id),
    )


def population(
    devices: Iterable[DeviceView], applicable: Mapping[str, Applicable]
) -> dict[str, int]:
    """How many patchable devices each window targets: the base of percentage rollout limits."""
    per_set: dict[int, int] = defaultdict(int)  # devices share a few dozen policy sets
    sets: dict[int, Applicable] = {}
    for device in devices:
        if device.is_gateway:
            continue
        one = applicable[device.id]
        per_set[id(one)] += 1
        sets[id(one)] = one
    counts: dict[str, int] = defaultdict(int)
    for key, count in per_set.items():
        for window in sets[key].windows:
            counts[window_key(window)] += count
    return counts


def counting_installs(ledger: Ledger) -> dict[Slot, int]:
    """A copy of the ledger's running installs per occurrence, for a pass to count into."""
    return defaultdict(int, ledger.running)


def count_issued(running: dict[Slot, int], device_plan: DevicePlan) -> None:
    """Count the installs a device plan issues into `running` (rollout limits of later devices)."""
    for job in device_plan.issue:
        if job.kind is JobKind.INSTALL and job.window and job.occurrence:
            running[(job.window, job.occurrence)] += 1


def assemble(
    desired: DesiredState,
    observed: ObservedState,
    *,
    now: datetime,
    settled: Settled,
    device_plans: Sequence[DevicePlan],
    window_states: Mapping[str, windows.WindowState],
) -> Plan:
    """The plan: device plans in device order, then the grouped info alerts, the alerts of
    what agents reported (`alerts.reported`) and of the jobs the controller ended."""
    failed = {one.device.id: one.failed for one in device_plans if one.failed}
    names = {d.id: d.name for d in observed.devices}
    fleet_alerts = alerts.grouped(
        (item for one in device_plans for item in one.searched),
        (item for one in device_plans for item in one.initiated),
    )
    fleet_alerts.extend(alerts.reported(observed.jobs, names))
    fleet_alerts.extend(alerts.ended(job, names, now=now) for job, _ in settled.ended)
    ended = [s for _, s in settled.ended]
    return Plan(
        revision=desired.revision,
        now=now,
        issue=tuple(job for one in device_plans for job in one.issue),
        cancel=tuple(sorted({job for one in device_plans for job in one.cancel})),
        supersede=tuple(sorted({job for one in device_plans for job in one.supersede})),
        expire=tuple(j.id for j in ended if j.end_reason is EndReason.NO_AGENT),
        time_out=tuple(j.id for j in ended if j.end_reason is EndReason.TIMED_OUT),
        compliance=tuple(row for one in device_plans for row in one.compliance),
        alerts=(*(alert for one in device_plans for alert in one.alerts), *fleet_alerts),
        devices=tuple(one.summary for one in device_plans),
        windows=window_states,
        holding=frozenset(key for one in device_plans for key in one.holding)
        | alerts.holding(fleet_alerts, failed),
    )
