"""Incremental planning: a pass whose cost follows what changed, with the plan `plan()` gives.

`IncrementalPlanner.plan(desired, observed, now=..., changes=...)` returns exactly the plan that
`controller.core.plan.plan(desired, observed, now=...)` returns for the same inputs; it reuses
what an earlier call computed for devices none of whose inputs changed. `Changes` is what the
caller knows changed in the observed state since its previous call (issue 14 item 1);
`Changes.EVERYTHING` (the default) asks for a full pass, as the first pass and the periodic
resync do (level-triggered, like controller-runtime's resync period).

What a device's plan depends on, and how a change reaches it (when unsure, re-plan):
- its row, scan and jobs: `Changes.devices`; a job the controller ends in this pass;
- the policy objects targeting it: on a new desired state, the policy set of each distinct
  set of device facts is compared by content (objects, script jobs and the scripts they send)
  with the set those facts had before; devices whose set changed are re-planned;
- the catalogue and the date (decisions read `today`): every device (`Changes.catalogue`,
  midnight UTC);
- time: each device plan carries `valid_until`, the earliest instant its output could change
  with no input change (going offline, a scan due or stale, a job's pickup or run deadline, a
  scan retry, a script job's next start or look-back end); a device that issued a job is
  re-planned every pass (the job's deadline follows `now` and it carries the revision);
- its windows: each window's signature (its state at `now`, whether it accepts installs, and
  what its rollout limits say) is compared with the previous pass; when it changed every
  device of the window is re-planned, and a window whose `maxConcurrent` can bind in this pass
  couples its devices (an install issued to one holds the next): one re-planned device
  re-plans them all.
The fleet-level parts (settled jobs, window states, grouped alerts, ledger and ended-job alerts,
holding keys) are computed each pass from the device plans, as `plan()` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import ClassVar

from controller.core import jobs, targets, windows
from controller.core.decisions import Applicable
from controller.core.desired import DesiredState
from controller.core.jobs import ScriptPayload
from controller.core.observed import ONLINE_POLL_INTERVALS, DeviceView, JobKind, ObservedState
from controller.core.plan import Plan
from controller.core.planning import fleet, scripts
from controller.core.planning.devices import DevicePlan, PassFacts, plan_device
from controller.core.planning.ledger import Ledger
from controller.core.planning.policysets import Facts, PolicySets
from controller.core.planning.values import SCAN_RETRY_AFTER, window_key
from controller.kinds import PatchWindow, ScriptJob
from controller.kinds.scans import DEFAULT_SCAN_INTERVAL


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the observed state since the planner's previous call.

    `devices`: ids of devices whose row, facts, scan, findings or jobs changed (enrolled and
    retired devices included). `catalogue`: the patch catalogue changed (a feed import, new
    metadata reported by agents). `everything`: unknown, plan the whole fleet.
    """

    devices: frozenset[str] = frozenset()
    catalogue: bool = False
    everything: bool = False

    EVERYTHING: ClassVar[Changes]


Changes.EVERYTHING = Changes(everything=True)


@dataclass(frozen=True, slots=True)
class PassCounts:
    """How much planning work one call did: devices planned afresh and devices reused."""

    planned: int
    reused: int


PolicyFingerprint = tuple[Applicable, tuple[ScriptJob, ...], tuple[ScriptPayload | None, ...]]
"""A policy set by content: its objects, its script jobs and every script they would send."""


_JUST_AFTER = timedelta(microseconds=1)  # the first instant after one (datetime's resolution)

WindowSignature = tuple[tuple[object, ...], tuple[object, ...]]
"""A window at `now` as its devices see it: (state, rollout); see `_window_signature`."""


@dataclass(frozen=True, slots=True)
class _Kept:
    """A device plan kept for reuse: the plan, its facts, and until when it holds."""

    device_plan: DevicePlan
    facts: Facts
    fingerprint: PolicyFingerprint
    valid_until: datetime | None  # None: until an input changes


@dataclass
class _Memory:
    """What the previous call planned from: enough to tell what changed since."""

    desired: DesiredState
    today: date
    sets: PolicySets
    order: tuple[str, ...]
    devices: dict[str, DeviceView]  # id → the device as policy sees it (declared labels)
    kept: dict[str, _Kept] = field(default_factory=dict)
    window_signatures: dict[str, WindowSignature] = field(default_factory=dict)


class IncrementalPlanner:
    """Plans like `plan()`, keeping what it needs to plan only changed devices next time.

    Not thread-safe: one planner per reconciler, called once per pass. `last` counts the
    previous call's planning work."""

    def __init__(self) -> None:
        self.last: PassCounts = PassCounts(planned=0, reused=0)
        # the ids of the devices the previous call planned afresh; None: every device (a full
        # pass). A device not among them has exactly the plan (and compliance) it had before.
        self.replanned: frozenset[str] | None = None
        self._memory: _Memory | None = None

    def plan(
        self,
        desired: DesiredState,
        observed: ObservedState,
        *,
        now: datetime,
        changes: Changes = Changes.EVERYTHING,
    ) -> Plan:
        """The plan for `now`; equal to `plan(desired, observed, now=now)`."""
        memory = self._memory
        full = (
            memory is None or changes.everything or changes.catalogue or memory.today != now.date()
        )
        try:
            if full or memory is None:
                return self._full(desired, observed, now=now)
            return self._incremental(memory, desired, observed, now=now, changes=changes.devices)
        except BaseException:
            self._memory = None  # half-updated memory would hide this call's changes: start over
            raise

    def _full(self, desired: DesiredState, observed: ObservedState, *, now: datetime) -> Plan:
        sets = PolicySets(desired, observed, today=now.date())
        devices = fleet.in_order(observed, desired)
        memory = _Memory(
            desired=desired,
            today=now.date(),
            sets=sets,
            order=tuple(d.id for d in devices),
            devices={d.id: d for d in devices},
        )
        facts_of = {d.id: sets.facts(d) for d in devices}
        return self._pass(memory, observed, now=now, facts_of=facts_of, dirty=None)

    def _incremental(
        self,
        memory: _Memory,
        desired: DesiredState,
        observed: ObservedState,
        *,
        now: datetime,
        changes: frozenset[str],
    ) -> Plan:
        previous = memory.devices
        raw = {d.id: d for d in observed.devices}
        dirty: set[str] = {i for i in changes if i in raw}
        policy_changed = desired is not memory.desired
        if policy_changed:
            memory.desired = desired
            memory.sets = PolicySets(desired, observed, today=now.date())
            effective = {i: targets.effective_device(d, desired) for i, d in raw.items()}
            dirty.update(i for i, d in effective.items() if previous.get(i) != d)
        else:
            effective = {
                i: previous[i]
                if i in previous and i not in changes
                else targets.effective_device(d, desired)
                for i, d in raw.items()
            }
        if changes or policy_changed or effective.keys() != previous.keys():
            ordered = sorted(effective.values(), key=lambda d: (d.tenant, d.name, d.id))
            memory.order = tuple(d.id for d in ordered)
        memory.devices = effective
        sets, kept = memory.sets, memory.kept
        facts_of = {
            i: kept[i].facts
            if not policy_changed and i in kept and i not in changes
            else sets.facts(d)
            for i, d in effective.items()
        }
        return self._pass(memory, observed, now=now, facts_of=facts_of, dirty=dirty)

    def _pass(
        self,
        memory: _Memory,
        observed: ObservedState,
        *,
        now: datetime,
        facts_of: Mapping[str, Facts],
        dirty: set[str] | None,
    ) -> Plan:
        """Plan the devices in `dirty` and those whose plan no longer holds (`None`: all),
        reuse the others, and assemble the plan."""
        desired, sets = memory.desired, memory.sets
        settled = fleet.Settled.of(observed.jobs, now=now)
        window_states = {window_key(w): windows.evaluate(w.spec, now=now) for w in desired.windows}
        devices = [memory.devices[i] for i in memory.order]
        applicable = {d.id: sets.applicable(d, facts_of[d.id]) for d in devices}
        facts = PassFacts(
            desired=desired,
            scans=observed.scans,
            ledger=Ledger.of(settled.jobs),
            sets=sets,
            window_states=window_states,
            population=fleet.population(devices, applicable),
            now=now,
        )
        fingerprints = _Fingerprints(desired, sets)
        signatures = {
            key: _window_signature(w, facts) for w in desired.windows if (key := window_key(w))
        }
        if dirty is not None:
            dirty = self._stale(memory, devices, applicable, facts, fingerprints, signatures, dirty)
            dirty.update(job.device_id for job, _ in settled.ended)
        running = fleet.counting_installs(facts.ledger)
        device_plans: list[DevicePlan] = []
        kept: dict[str, _Kept] = {}
        planned: list[str] = []
        for device in devices:
            previous = memory.kept.get(device.id)
            if dirty is None or device.id in dirty or previous is None:
                one = applicable[device.id]
                device_plan = plan_device(facts, device, one, running)
                fleet.count_issued(running, device_plan)
                previous = _Kept(
                    device_plan,
                    facts_of[device.id],
                    fingerprints.of(one),
                    _valid_until(device_plan, one, facts, fingerprints),
                )
                planned.append(device.id)
            kept[device.id] = previous
            device_plans.append(previous.device_plan)
        memory.kept = kept
        memory.window_signatures = signatures
        self._memory = memory
        self.last = PassCounts(planned=len(planned), reused=len(devices) - len(planned))
        self.replanned = None if dirty is None else frozenset(planned)
        return fleet.assemble(
            desired,
            observed,
            now=now,
            settled=settled,
            device_plans=device_plans,
            window_states=window_states,
        )

    @staticmethod
    def _stale(
        memory: _Memory,
        devices: list[DeviceView],
        applicable: Mapping[str, Applicable],
        facts: PassFacts,
        fingerprints: _Fingerprints,
        signatures: Mapping[str, WindowSignature],
        dirty: set[str],
    ) -> set[str]:
        """The devices to re-plan: those changed, those whose kept plan expired by `now` or
        was planned under another policy set, and every device of a window whose signature
        changed; devices that read a window's rollout limits when those changed or when
        the window couples them to a re-planned device."""
        now = facts.now
        for device in devices:
            was = memory.kept.get(device.id)
            if not _holds(was, applicable[device.id], fingerprints, now=now):
                dirty.add(device.id)
        return _window_devices(memory, devices, applicable, signatures, dirty)


class _Fingerprints:
    """Policy sets by content, computed once per set in a pass."""

    def __init__(self, desired: DesiredState, sets: PolicySets) -> None:
        self.desired = desired
        self.sets = sets
        self._found: dict[int, PolicyFingerprint] = {}
        self._same: dict[tuple[int, int], bool] = {}
        self._script_changes: dict[int, list[datetime | None]] = {}

    def same(self, before: PolicyFingerprint, applicable: Applicable) -> bool:
        """Whether `applicable` is, by content, the policy set `before` was (compared once per
        pair of sets: a new revision compares a few dozen sets, not every device)."""
        now = self.of(applicable)
        pair = (id(before), id(now))
        found = self._same.get(pair)
        if found is None:
            found = before is now or before == now
            self._same[pair] = found
        return found

    def script_changes(self, applicable: Applicable, *, now: datetime) -> list[datetime | None]:
        """When the script jobs of a policy set next change what they issue (`next_change`)."""
        found = self._script_changes.get(id(applicable))
        if found is None:
            found = [scripts.next_change(s, now=now) for s in self.sets.script_jobs(applicable)]
            self._script_changes[id(applicable)] = found
        return found

    def of(self, applicable: Applicable) -> PolicyFingerprint:
        found = self._found.get(id(applicable))
        if found is None:
            script_jobs = self.sets.script_jobs(applicable)
            sent = [
                scripts.payload(self.desired, w, name)
                for w in applicable.windows
                for name in (w.spec.pre_script, w.spec.post_script)
            ]
            sent.extend(scripts.payload(self.desired, s, s.spec.script) for s in script_jobs)
            found = (applicable, script_jobs, tuple(sent))
            self._found[id(applicable)] = found
        return found


def _window_signature(window: PatchWindow, facts: PassFacts) -> WindowSignature:
    """What a window tells its devices at `now`: (its state and whether it accepts installs,
    what its rollout limits say). The rollout part is `("bound", coupled, ...)` with the
    counters when `maxConcurrent` can be reached in this pass (`coupled`: an occurrence is
    still below it, so an install issued to one device may hold the next), else
    `("free", ...)` with the failure holds of its occurrences."""
    key = window_key(window)
    state = facts.window_states[key]
    accepts = state.current.accepts_new_installs(facts.now) if state.current else False
    population = facts.population.get(key, 0)
    rollout = window.spec.rollout
    limit = rollout.max_concurrent.of(population)
    allowed = rollout.max_failures.of(population)
    slots = [(key, o.key) for o in (state.current, state.catch_up) if o is not None]
    running = {slot: facts.ledger.running.get(slot, 0) for slot in slots}
    failures = {slot: len(facts.ledger.failed_devices.get(slot, ())) for slot in slots}
    if any(running[slot] + population > limit for slot in slots):
        counters = tuple((slot, running[slot], failures[slot]) for slot in slots)
        # an occurrence already at its limit holds every reader whatever this pass issues;
        # only one below it couples them (which reader gets the last places depends on order)
        coupled = any(running[slot] < limit for slot in slots)
        return (state, accepts), ("bound", coupled, limit, allowed, counters)
    failing = tuple((slot, failures[slot] if failures[slot] > allowed else None) for slot in slots)
    return (state, accepts), ("free", allowed, failing)


def _window_devices(
    memory: _Memory,
    devices: list[DeviceView],
    applicable: Mapping[str, Applicable],
    signatures: Mapping[str, WindowSignature],
    dirty: set[str],
) -> set[str]:
    """`dirty` with the devices its windows reach: every device of a window whose state
    changed, the devices that read a window's rollout limits when those changed or when the
    window couples them to a re-planned device."""
    members = _members(devices, applicable)
    readers: dict[str, list[str]] = defaultdict(list)
    for device in devices:
        was = memory.kept.get(device.id)
        if was is not None and was.device_plan.rollout_window is not None:
            readers[was.device_plan.rollout_window].append(device.id)
    before = memory.window_signatures
    for key, (state, rollout) in signatures.items():
        previous = before.get(key)
        if previous is None or previous[0] != state:
            dirty.update(members.get(key, ()))
        elif previous[1] != rollout:
            dirty.update(readers.get(key, ()))
    # a window whose maxConcurrent can bind couples the devices that read its limits: one
    # re-planned device of the window may issue an install that holds the next reader, so
    # they are all re-planned; they may reach another coupled window: repeat until stable
    pending = {k for k, (_, rollout) in signatures.items() if rollout[:2] == ("bound", True)}
    while True:
        joining = {k for k in pending if any(i in dirty for i in members.get(k, ()))}
        if not joining:
            return dirty
        for key in joining:
            dirty.update(readers.get(key, ()))
        pending -= joining


def _members(
    devices: list[DeviceView], applicable: Mapping[str, Applicable]
) -> dict[str, list[str]]:
    """The ids of the devices each window targets (window key → ids, in device order)."""
    by_set: dict[int, list[str]] = defaultdict(list)  # devices share a few dozen policy sets
    sets: dict[int, Applicable] = {}
    for device in devices:
        one = applicable[device.id]
        by_set[id(one)].append(device.id)
        sets[id(one)] = one
    members: dict[str, list[str]] = defaultdict(list)
    for set_id, ids in by_set.items():
        for window in sets[set_id].windows:
            members[window_key(window)].extend(ids)
    return members


def _holds(
    was: _Kept | None, applicable: Applicable, fingerprints: _Fingerprints, *, now: datetime
) -> bool:
    """Whether a kept plan still holds at `now` under the device's current policy set."""
    if was is None or (was.valid_until is not None and was.valid_until <= now):
        return False
    return fingerprints.same(was.fingerprint, applicable)


def _valid_until(
    device_plan: DevicePlan, applicable: Applicable, facts: PassFacts, sets: _Fingerprints
) -> datetime | None:
    """The earliest instant after `facts.now` from which the device's plan could change with no
    input change (None: none). A plan that issued a job holds for this instant only."""
    now = facts.now
    if device_plan.issue:
        return now
    device = device_plan.device
    instants: list[datetime | None] = []
    if device.is_online(now=now) and device.last_seen is not None:
        # online while `last_seen >= now - 2 polls`: offline only just after that instant
        offline = device.last_seen + device.poll_interval * ONLINE_POLL_INTERVALS
        instants.append(offline + _JUST_AFTER)
    scan = facts.scans.get(device.id)
    if scan is not None:
        every = min(
            (s.spec.every for s in applicable.scan_schedules), default=DEFAULT_SCAN_INTERVAL
        )
        instants.append(scan.fresh_at + every)
        # stale once `now - fresh_at > staleScanAfter`: just after that instant
        stale = (scan.fresh_at + b.spec.stale_scan_after for b in applicable.baselines)
        instants.extend(instant + _JUST_AFTER for instant in stale)
    for job in facts.ledger.by_device.get(device.id, ()):
        if job.state.in_flight:
            instants.extend((job.deadline, jobs.run_deadline(job)))
        if job.kind is JobKind.SCAN and job.updated_at is not None:
            instants.append(job.updated_at + SCAN_RETRY_AFTER)
    instants.extend(sets.script_changes(applicable, now=now))
    future = [i for i in instants if i is not None and i > now]
    return min(future, default=None)
