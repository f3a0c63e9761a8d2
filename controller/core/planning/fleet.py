"""The fleet-level parts of a pass: settling overdue jobs, the devices in planning order, window
populations, and the assembly of device plans with the fleet's alerts into one `Plan`.

Purely computational, no side effects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import Any

from controller.core import jobs, targets, windows
from controller.core.decisions import Applicable
from controller.core.desired import DesiredState
from controller.core.jobs import EndReason
from controller.core.observed import (
    IN_FLIGHT,
    DeviceView,
    JobKind,
    JobLedger,
    JobView,
    ObservedState,
)
from controller.core.planning import alerts
from controller.core.planning.devices import DevicePlan
from controller.core.planning.ledger import Ledger, Slot
from controller.core.planning.values import CONDITION_TYPES, AlertSpec, Plan, window_key


@dataclass(frozen=True, slots=True)
class Settled:
    """The ledger once overdue jobs are ended at `now` (`jobs.settle`), and which ended:
    `ended` pairs each ended job as observed with the job as settled (device by device, in
    ledger order)."""

    jobs: JobLedger
    ended: tuple[tuple[JobView, JobView], ...]

    @classmethod
    def of(cls, observed_jobs: JobLedger, *, now: datetime) -> Settled:
        # only a job in flight can be overdue: only the devices with one are looked at (a
        # settled ledger is mostly finished jobs)
        fresh: dict[str, tuple[JobView, ...]] = {}
        ended: list[tuple[JobView, JobView]] = []
        for device_id in sorted(observed_jobs.in_flight):
            device_jobs = observed_jobs.of_device(device_id)
            settled = tuple(
                jobs.settle(job, now=now) if job.state in IN_FLIGHT else job for job in device_jobs
            )
            pairs = [(job, s) for job, s in zip(device_jobs, settled, strict=True) if s is not job]
            if pairs:
                fresh[device_id] = settled
                ended.extend(pairs)
        return cls(
            jobs=observed_jobs.replaced(fresh) if fresh else observed_jobs, ended=tuple(ended)
        )


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


class Names(Mapping[str, str]):
    """Device id → name, read from a mapping of devices without copying it (a pass names the
    devices of a few jobs, the fleet has 100,000)."""

    def __init__(self, devices: Mapping[str, DeviceView]) -> None:
        self._devices = devices

    def __getitem__(self, device_id: str) -> str:
        return self._devices[device_id].name

    def __iter__(self) -> Iterator[str]:
        return iter(self._devices)

    def __len__(self) -> int:
        return len(self._devices)


def own_alerts(
    device_plans: Sequence[DevicePlan],
    settled: Settled,
    names: Mapping[str, str],
    *,
    now: datetime,
) -> list[AlertSpec]:
    """The fleet's own alerts of a pass: the grouped info alerts (`alerts.grouped`), then those
    of the jobs the controller ended. Made again every pass (a few)."""
    found = alerts.grouped(_joined(device_plans, "searched"), _joined(device_plans, "initiated"))
    found.extend(alerts.ended(job, names, now=now) for job, _ in settled.ended)
    return found


def assemble(  # noqa: PLR0913 - keyword-only parts of one plan
    desired: DesiredState,
    *,
    now: datetime,
    settled: Settled,
    device_plans: Sequence[DevicePlan],
    window_states: Mapping[str, windows.WindowState],
    own: Sequence[AlertSpec],
    reported: Sequence[AlertSpec],
    reported_conditions: Iterable[AlertSpec] | None = None,
) -> Plan:
    """The plan: device plans in device order, then the fleet's `own` alerts (`own_alerts`)
    and `reported` (the alerts of what agents reported: `alerts.reported` of the ledger).
    `reported_conditions`: those of `reported` of a condition type, in any order (None: found
    here; the incremental planner keeps them per device)."""
    # one pass per field over 100,000 device plans, in C (map, chain): most parts are empty
    failed = {one.device.id: one.failed for one in filter(_FAILED, device_plans)}
    if reported_conditions is None:
        reported_conditions = [a for a in reported if a.type in CONDITION_TYPES]
    ended = [s for _, s in settled.ended]
    return Plan(
        revision=desired.revision,
        now=now,
        issue=tuple(_joined(device_plans, "issue")),
        cancel=tuple(sorted(set(_joined(device_plans, "cancel")))),
        supersede=tuple(sorted(set(_joined(device_plans, "supersede")))),
        expire=tuple(j.id for j in ended if j.end_reason is EndReason.NO_AGENT),
        time_out=tuple(j.id for j in ended if j.end_reason is EndReason.TIMED_OUT),
        compliance=tuple(_joined(device_plans, "compliance")),
        alerts=(*_joined(device_plans, "alerts"), *own, *reported),
        devices=tuple(map(_SUMMARY, device_plans)),
        windows=window_states,
        holding=frozenset(_joined(device_plans, "holding"))
        | alerts.holding(chain(own, reported_conditions), failed),
    )


def _joined(device_plans: Sequence[DevicePlan], name: str) -> Iterator[Any]:
    """The items of one field of every device plan, in order."""
    return chain.from_iterable(map(attrgetter(name), device_plans))


_FAILED = attrgetter("failed")
_SUMMARY = attrgetter("summary")
