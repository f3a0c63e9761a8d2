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
What is kept between calls, so that a pass costs what changed: each device's effective view,
facts and plan; the devices grouped by facts (one `Applicable` per group: a commit evaluates
and compares a few dozen groups, and an unchanged set is adopted by the new `PolicySets` with
its decisions); the instants kept plans expire at (a heap); the devices that read each
window's rollout limits; the ledger index, brought up to date for the devices whose ledger
entry changed (`Ledger.update`); the alerts each device's plan and reported jobs gave, so the
pass can tell which alerts are new (`fresh_alerts`). Settling overdue jobs (the devices with a
job in flight), window states, grouped alerts and holding keys are computed each pass, as
`plan()` does (in C over device plans).
"""

from __future__ import annotations

import heapq
import operator
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from typing import ClassVar

from controller.core import jobs, targets, windows
from controller.core.decisions import Applicable
from controller.core.desired import DesiredState
from controller.core.jobs import ScriptPayload
from controller.core.observed import (
    ONLINE_POLL_INTERVALS,
    DeviceJobs,
    DeviceView,
    JobKind,
    JobLedger,
    JobView,
    ObservedState,
)
from controller.core.plan import Plan
from controller.core.planning import alerts, fleet, scans, scripts
from controller.core.planning.devices import DevicePlan, PassFacts, plan_device
from controller.core.planning.ledger import Ledger
from controller.core.planning.policysets import Facts, PolicySets
from controller.core.planning.values import (
    CONDITION_TYPES,
    SCAN_RETRY_AFTER,
    AlertSpec,
    window_key,
)
from controller.kinds import PatchWindow, ScriptJob


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


class _Reported:
    """`alerts.reported` of a ledger, computed again only for the jobs that changed.

    Kept per device, in ledger order: (its jobs, its name, each job's alerts, their alerts).
    A settled ledger of 400,000 finished installs would otherwise rebuild 800,000 alerts every
    pass. Only the devices whose ledger entry is another object than in the previous call's
    ledger (`JobLedger.differing`), or whose name changed, are looked at, and of those only
    the jobs not equal to the job of the same id they had. It outlives the planner's memory
    (`IncrementalPlanner.forget`): a resync's ledger is mostly the jobs it had. `fresh`: the
    alerts of the jobs whose alerts were made again in the last call (all of them on the
    first), the only reported alerts a pass can add."""

    def __init__(self) -> None:
        self._kept: dict[str, _DeviceAlerts] = {}
        self._last: tuple[JobLedger, list[AlertSpec]] | None = None
        self._conditions: dict[str, tuple[AlertSpec, ...]] = {}  # only devices with some
        self.fresh: list[AlertSpec] = []

    def conditions(self) -> Iterable[AlertSpec]:
        """The alerts of the last call of a condition type (`CONDITION_TYPES`), in any order:
        what `alerts.holding` reads of them (a few, of 800,000)."""
        return chain.from_iterable(self._conditions.values())

    def alerts(
        self,
        ledger: JobLedger,
        names: Mapping[str, str],
        *,
        renamed: Collection[str] | None = None,
    ) -> list[AlertSpec]:
        """`alerts.reported(ledger, names)`. `renamed`: the devices whose name may differ from
        the previous call's (None: any)."""
        self.fresh = []
        last = self._last
        if renamed is not None and not renamed and last is not None and last[0] is ledger:
            return last[1]
        kept = self._kept
        if renamed is None or last is None:
            look: Collection[str] = ledger.by_device.keys()
        else:
            look = ledger.differing(last[0])
            look.update(i for i in renamed if i in ledger.by_device)
        reorder = kept.keys() != ledger.by_device.keys()  # devices joined or left
        for device_id in look:
            device_jobs = ledger.by_device.get(device_id)
            if device_jobs is None:
                continue
            name = names.get(device_id, device_id)
            was = kept.get(device_id)
            if was is not None and was[0] is device_jobs and was[1] == name:
                continue
            kept[device_id] = now = self._device(device_jobs, name, names, was)
            conditions = tuple(a for a in now[3] if a.type in CONDITION_TYPES)
            if conditions:
                self._conditions[device_id] = conditions
            else:
                self._conditions.pop(device_id, None)
        if reorder:  # in ledger order, without the devices that left it
            kept = {i: kept[i] for i in ledger.by_device}
            for device_id in self._conditions.keys() - kept.keys():
                del self._conditions[device_id]
        self._kept = kept
        found = list(chain.from_iterable(map(_ALERTS, kept.values())))
        self._last = (ledger, found)
        return found

    def _device(
        self,
        device_jobs: DeviceJobs,
        name: str,
        names: Mapping[str, str],
        was: _DeviceAlerts | None,
    ) -> _DeviceAlerts:
        """A device's entry: each job's alerts taken from `was` when the job is equal to the
        one of the same id it held (and the name is the same), else made (and fresh)."""
        earlier: dict[str, tuple[JobView, tuple[AlertSpec, ...]]] = (
            {}
            if was is None or was[1] != name
            else {job.id: (job, made) for job, made in zip(was[0], was[2], strict=True)}
        )
        per_job: list[tuple[AlertSpec, ...]] = []
        for job in device_jobs:
            old = earlier.get(job.id)
            if old is not None and (old[0] is job or old[0] == job):
                per_job.append(old[1])
                continue
            made = tuple(alerts.reported((job,), names))
            self.fresh.extend(made)
            per_job.append(made)
        return device_jobs, name, tuple(per_job), tuple(chain.from_iterable(per_job))


_DeviceAlerts = tuple[DeviceJobs, str, tuple[tuple[AlertSpec, ...], ...], tuple[AlertSpec, ...]]
"""A device's reported alerts: (its jobs, its name, each job's alerts, all of them in order)."""

_ALERTS = operator.itemgetter(3)


@dataclass
class _Memory:
    """What the previous call planned from, kept per device and per policy set (devices with
    equal facts share one `Applicable`), so that a pass touches only what changed.

    `groups`: facts → the ids of the devices with those facts (`shared_facts`: the one key
    tuple its devices share); `plans` and `until`: each device's kept plan and until when it
    holds (`_valid_until`; absent: until an input changes); `expiry`: a heap of those
    instants; `readers`: window key → the devices whose kept plan read its rollout limits."""

    desired: DesiredState
    today: date
    sets: PolicySets
    devices: dict[str, DeviceView] = field(default_factory=dict)  # as policy sees them
    facts: dict[str, Facts] = field(default_factory=dict)
    groups: dict[Facts, set[str]] = field(default_factory=dict)
    shared_facts: dict[Facts, Facts] = field(default_factory=dict)  # each group's key
    gateways: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)
    plans: dict[str, DevicePlan] = field(default_factory=dict)
    until: dict[str, datetime] = field(default_factory=dict)
    expiry: list[tuple[datetime, str]] = field(default_factory=list)
    readers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    window_signatures: dict[str, WindowSignature] = field(default_factory=dict)
    ledger: Ledger | None = None

    def ledger_of(self, settled: JobLedger) -> Ledger:
        """`Ledger.of(settled)`: the kept index, with only the devices whose jobs changed
        indexed again (`Ledger.update`)."""
        if self.ledger is None:
            self.ledger = Ledger.of(settled)
        elif self.ledger.jobs is not settled:
            self.ledger.update(settled)
        return self.ledger

    def place(self, device: DeviceView) -> None:
        """Record `device` (as the agent reports it) under the current policy: its effective
        view, its facts and its group."""
        self.forget(device.id, keep_plan=True)
        effective = targets.effective_device(device, self.desired)
        facts = self.sets.facts(effective)
        group = self.groups.get(facts)
        if group is None:
            group = self.groups[facts] = set()
            self.shared_facts[facts] = facts
        else:
            # the group's own key, not this equal copy: one Facts tuple (~240 bytes) per
            # group instead of per device (issue 14 item 7)
            facts = self.shared_facts[facts]
        self.devices[device.id] = effective
        self.facts[device.id] = facts
        group.add(device.id)
        if effective.is_gateway:
            self.gateways.add(device.id)

    def forget(self, device_id: str, *, keep_plan: bool = False) -> None:
        """Drop a retired device, or only its facts (`keep_plan`: it is placed again)."""
        facts = self.facts.pop(device_id, None)
        if facts is not None:
            group = self.groups[facts]
            group.discard(device_id)
            if not group:
                del self.groups[facts]
                del self.shared_facts[facts]
        self.devices.pop(device_id, None)
        self.gateways.discard(device_id)
        if keep_plan:
            return
        was = self.plans.pop(device_id, None)
        if was is not None and was.rollout_window is not None:
            self.readers[was.rollout_window].discard(device_id)
        self.until.pop(device_id, None)

    def sort(self) -> None:
        """The planner's device order (`fleet.in_order`)."""
        self.order = sorted(self.devices, key=self._order_key)

    def in_order(self, device_ids: set[str]) -> list[str]:
        """`device_ids` in the planner's order: sorted by it when few, else picked from
        `order` (no index of each device's place is kept: 70 MB at 1,000,000 devices)."""
        if len(device_ids) * 8 < len(self.order):
            return sorted(device_ids, key=self._order_key)
        return [device_id for device_id in self.order if device_id in device_ids]

    def _order_key(self, device_id: str) -> tuple[str, str, str]:
        view = self.devices[device_id]
        return view.tenant, view.name, device_id

    def keep(self, device_plan: DevicePlan, until: datetime | None) -> DevicePlan | None:
        """Keep a device's fresh plan, holding until `until` (None: until an input changes);
        answers the plan it replaces, if any."""
        device_id = device_plan.device.id
        was = self.plans.get(device_id)
        if was is not None and was.rollout_window is not None:
            self.readers[was.rollout_window].discard(device_id)
        if device_plan.rollout_window is not None:
            self.readers[device_plan.rollout_window].add(device_id)
        self.plans[device_id] = device_plan
        if until is None:
            self.until.pop(device_id, None)
        else:
            self.until[device_id] = until
            heapq.heappush(self.expiry, (until, device_id))
        return was

    def expired(self, now: datetime) -> set[str]:
        """The devices whose kept plan no longer holds at `now`; heap entries of plans made
        since are dropped as they come up."""
        found: set[str] = set()
        expiry, until = self.expiry, self.until
        while expiry and expiry[0][0] <= now:
            instant, device_id = heapq.heappop(expiry)
            if until.get(device_id) == instant:
                found.add(device_id)
        return found


class IncrementalPlanner:
    """Plans like `plan()`, keeping what it needs to plan only changed devices next time.

    Not thread-safe: one planner per reconciler, called once per pass. `last` counts the
    previous call's planning work."""

    def __init__(self) -> None:
        self.last: PassCounts = PassCounts(planned=0, reused=0)
        # the ids of the devices the previous call planned afresh; None: every device (a full
        # pass). A device not among them has exactly the plan (and compliance) it had before.
        self.replanned: frozenset[str] | None = None
        # those of them whose compliance records differ from their plan before (or who had
        # none): the others' stored rows are the ones written when that plan was made
        self.compliance_changed: frozenset[str] | None = None
        # the alerts of the previous call that were not in the call before it (None: every
        # alert of its plan, `forget(alerts=True)`)
        self.fresh_alerts: tuple[AlertSpec, ...] | None = None
        self._memory: _Memory | None = None
        # outlive `forget`: the alerts each device's plan (those that gave any) and jobs gave
        # the previous call
        self._reported = _Reported()
        self._device_alerts: dict[str, tuple[AlertSpec, ...]] | None = None

    def forget(self, *, alerts: bool = False) -> None:
        """Drop what earlier calls kept: the next call plans everything. A caller about to
        make a full pass frees the previous plans before it reads and plans the fleet again,
        instead of holding two fleets' plans at once (at 1,000,000 devices, hundreds of MB of
        the resync's peak: `bench/million.py`). `alerts`: forget the alerts given too, so the
        next call's `fresh_alerts` is None (its plan's alerts may not all be stored: a pass
        failed, the store changed behind the caller's back)."""
        self._memory = None
        if alerts:
            self._reported = _Reported()
            self._device_alerts = None

    @property
    def devices(self) -> Mapping[str, DeviceView]:
        """The devices of the previous call by id, as policy sees them (declared labels merged;
        tenant and name as reported); empty before the first call."""
        return self._memory.devices if self._memory is not None else {}

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
            # half-updated memory would hide this call's changes, and what it remembers of the
            # alerts given may name alerts no plan held: start over
            self.forget(alerts=True)
            raise

    def _full(self, desired: DesiredState, observed: ObservedState, *, now: datetime) -> Plan:
        today = now.date()
        memory = _Memory(desired, today, PolicySets(desired, observed, today=today))
        for device in observed.devices:
            memory.place(device)
        memory.sort()
        return self._pass(memory, observed, now=now, dirty=None, renamed=None)

    def _incremental(
        self,
        memory: _Memory,
        desired: DesiredState,
        observed: ObservedState,
        *,
        now: datetime,
        changes: frozenset[str],
    ) -> Plan:
        raw = {d.id: d for d in observed.devices}
        known = memory.devices
        gone = known.keys() - raw.keys()
        enrolled = raw.keys() - known.keys()
        changed = {i for i in changes if i in raw} | enrolled
        moved = {
            i
            for i in changed
            if i in known and (known[i].tenant, known[i].name) != (raw[i].tenant, raw[i].name)
        }
        resort = bool(gone or enrolled or moved)
        # the devices whose name the ledger's alerts may now say otherwise (a retired device's
        # jobs are named by its id); a tenant's move only makes it look again
        renamed = gone | enrolled | moved
        for device_id in gone:
            memory.forget(device_id)
            if self._device_alerts is not None:  # a device enrolled again gives them anew
                self._device_alerts.pop(device_id, None)
        earlier: tuple[DesiredState, PolicySets] | None = None
        if desired is not memory.desired:
            earlier = (memory.desired, memory.sets)
            memory.sets = PolicySets(desired, observed, today=now.date())
            memory.desired = desired
            # a device whose declared labels or named status changed is placed again
            affected = _affected_names(earlier[1], memory.sets)
            if affected:
                changed.update(i for i, d in known.items() if d.name in affected)
        for device_id in changed:
            memory.place(raw[device_id])
        dirty = set(changed)
        if earlier is not None:
            dirty.update(_compare_sets(memory, *earlier))
        if resort:
            memory.sort()
        return self._pass(memory, observed, now=now, dirty=dirty, renamed=renamed)

    def _pass(
        self,
        memory: _Memory,
        observed: ObservedState,
        *,
        now: datetime,
        dirty: set[str] | None,
        renamed: set[str] | None,
    ) -> Plan:
        """Plan the devices in `dirty` and those whose plan no longer holds (`None`: all),
        reuse the others, and assemble the plan."""
        desired, sets, devices = memory.desired, memory.sets, memory.devices
        settled = fleet.Settled.of(observed.jobs, now=now)
        window_states = {window_key(w): windows.evaluate(w.spec, now=now) for w in desired.windows}
        group_sets = {
            facts: sets.applicable(devices[next(iter(ids))], facts)
            for facts, ids in memory.groups.items()
        }
        facts = PassFacts(
            desired=desired,
            scans=observed.scans,
            ledger=memory.ledger_of(settled.jobs),
            sets=sets,
            window_states=window_states,
            population=_population(memory, group_sets),
            now=now,
        )
        fingerprints = _Fingerprints(desired, sets)
        signatures = {
            key: _window_signature(w, facts) for w in desired.windows if (key := window_key(w))
        }
        if dirty is None:
            todo: list[str] = memory.order
            memory.plans, memory.until, memory.expiry = {}, {}, []
            memory.readers = defaultdict(set)
        else:
            dirty.update(memory.expired(now))
            dirty.update(job.device_id for job, _ in settled.ended)
            dirty.intersection_update(devices)
            _window_devices(memory, group_sets, signatures, dirty)
            todo = memory.in_order(dirty)
        names = fleet.Names(devices)
        # before the devices are planned: the cache lets go of the previous ledger's jobs (it
        # outlives `forget`), so a resync's peak does not hold two ledgers
        reported = self._reported.alerts(observed.jobs, names, renamed=renamed)
        known_alerts = self._device_alerts
        given = known_alerts if known_alerts is not None and dirty is not None else {}
        fresh: list[AlertSpec] = []  # alerts that were not in the previous call's plan
        running = fleet.counting_installs(facts.ledger)
        moved: list[str] = []  # devices whose compliance records changed
        for device_id in todo:
            one = group_sets[memory.facts[device_id]]
            device_plan = plan_device(facts, devices[device_id], one, running)
            fleet.count_issued(running, device_plan)
            was = memory.keep(device_plan, _valid_until(device_plan, one, facts, fingerprints))
            if was is None or was.compliance != device_plan.compliance:
                moved.append(device_id)
            if device_plan.alerts:
                if known_alerts is None or known_alerts.get(device_id) != device_plan.alerts:
                    fresh.extend(device_plan.alerts)
                given[device_id] = device_plan.alerts
            elif given:
                given.pop(device_id, None)  # only devices with alerts are kept (1,000,000)
        memory.window_signatures = signatures
        self._memory = memory
        self.last = PassCounts(planned=len(todo), reused=len(devices) - len(todo))
        self.replanned = None if dirty is None else frozenset(todo)
        self.compliance_changed = None if dirty is None else frozenset(moved)
        device_plans = list(map(memory.plans.__getitem__, memory.order))
        own = fleet.own_alerts(device_plans, settled, names, now=now)
        # the fleet's own alerts are made again every pass, and sent again (a few)
        self.fresh_alerts = None if known_alerts is None else (*fresh, *self._reported.fresh, *own)
        self._device_alerts = given
        return fleet.assemble(
            desired,
            now=now,
            settled=settled,
            device_plans=device_plans,
            window_states=window_states,
            own=own,
            reported=reported,
            reported_conditions=self._reported.conditions(),
        )


def _affected_names(before: PolicySets, after: PolicySets) -> set[str]:
    """Device names whose declared labels (`Device` objects) or named status changed between
    two revisions: their effective view or their facts may differ."""

    def declared(sets: PolicySets) -> dict[tuple[str | None, str], object]:
        return {(d.tenant, d.name): d.spec.labels for d in sets.desired.devices}

    old, new = declared(before), declared(after)
    names = {key[1] for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    names.update(before.named ^ after.named)
    return names


def _compare_sets(memory: _Memory, desired: DesiredState, earlier: PolicySets) -> set[str]:
    """After a commit: each group's policy set under the new revision compared by content
    (objects, script jobs, the scripts they send) with the one it had; an equal one is
    adopted (its devices keep their plans), else the group's devices are to be re-planned.
    Compared once per distinct set of facts (a few dozen), not per device."""
    sets = memory.sets
    before = _Fingerprints(desired, earlier)
    after = _Fingerprints(memory.desired, sets)
    dirty: set[str] = set()
    for facts, ids in memory.groups.items():
        found = sets.applicable(memory.devices[next(iter(ids))], facts)
        was = earlier.evaluated(facts)
        if was is not None and before.of(was) == after.of(found):
            sets.adopt(facts, was, earlier)
        else:
            dirty.update(ids)
    return dirty


def _population(memory: _Memory, group_sets: Mapping[Facts, Applicable]) -> dict[str, int]:
    """`fleet.population` counted per group: patchable devices per window."""
    gateways: dict[Facts, int] = defaultdict(int)
    for device_id in memory.gateways:
        gateways[memory.facts[device_id]] += 1
    counts: dict[str, int] = defaultdict(int)
    for facts, ids in memory.groups.items():
        count = len(ids) - gateways.get(facts, 0)
        for window in group_sets[facts].windows:
            counts[window_key(window)] += count
    return counts


class _Fingerprints:
    """Policy sets by content, computed once per set in a pass."""

    def __init__(self, desired: DesiredState, sets: PolicySets) -> None:
        self.desired = desired
        self.sets = sets
        self._found: dict[int, PolicyFingerprint] = {}
        self._expiry: dict[int, tuple[tuple[timedelta, ...], datetime | None]] = {}

    def expiry(
        self, applicable: Applicable, *, now: datetime
    ) -> tuple[tuple[timedelta, ...], datetime | None]:
        """When the plans of a policy set's devices may change with time, once per set:
        (the offsets from a device's scan `fresh_at` at which a scan falls due and goes stale
        for each baseline, in order; the first instant after `now` at which one of the set's
        script jobs changes what it issues (`scripts.next_change`), None if never)."""
        found = self._expiry.get(id(applicable))
        if found is None:
            # stale once `now - fresh_at > staleScanAfter`: just after that instant
            stale = (b.spec.stale_scan_after + _JUST_AFTER for b in applicable.baselines)
            after_scan = tuple(sorted((scans.interval(applicable), *stale)))
            changes = (scripts.next_change(s, now=now) for s in self.sets.script_jobs(applicable))
            found = (
                after_scan,
                min((i for i in changes if i is not None and i > now), default=None),
            )
            self._expiry[id(applicable)] = found
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
    group_sets: Mapping[Facts, Applicable],
    signatures: Mapping[str, WindowSignature],
    dirty: set[str],
) -> None:
    """Add to `dirty` the devices its windows reach: every device of a window whose state
    changed, the devices that read a window's rollout limits when those changed or when the
    window couples them to a re-planned device."""
    before = memory.window_signatures
    moved: set[str] = set()
    for key, (state, rollout) in signatures.items():
        previous = before.get(key)
        if previous is None or previous[0] != state:
            moved.add(key)
        elif previous[1] != rollout:
            dirty.update(memory.readers.get(key, ()))
    if moved:
        for facts, ids in memory.groups.items():
            if any(window_key(w) in moved for w in group_sets[facts].windows):
                dirty.update(ids)
    # a window whose maxConcurrent can bind couples the devices that read its limits: one
    # re-planned device of the window may issue an install that holds the next reader, so
    # they are all re-planned; they may reach another coupled window: repeat until stable
    pending = {k for k, (_, rollout) in signatures.items() if rollout[:2] == ("bound", True)}
    seen: set[Facts] = set()
    reached: set[str] = set()  # windows of the policy sets of dirty devices
    while pending:
        fresh = {memory.facts[i] for i in dirty} - seen
        seen |= fresh
        reached.update(window_key(w) for facts in fresh for w in group_sets[facts].windows)
        joining = pending & reached
        if not joining:
            return
        for key in joining:
            dirty.update(memory.readers.get(key, ()))
        pending -= joining


def _valid_until(
    device_plan: DevicePlan, applicable: Applicable, facts: PassFacts, sets: _Fingerprints
) -> datetime | None:
    """The earliest instant after `facts.now` from which the device's plan could change with no
    input change (None: none). A plan that issued a job holds for this instant only."""
    now = facts.now
    if device_plan.issue:
        return now
    device = device_plan.device
    after_scan, scripts_change = sets.expiry(applicable, now=now)
    instants: list[datetime | None] = [scripts_change]
    if device.last_seen is not None:
        # online while `last_seen >= now - 2 polls`: offline only just after that instant
        # (not after `now`: offline already, nothing to come)
        offline = device.last_seen + device.poll_interval * ONLINE_POLL_INTERVALS
        instants.append(offline + _JUST_AFTER)
    scan = facts.scans.get(device.id)
    if scan is not None:
        fresh_at = scan.fresh_at
        # in order: the first instant still to come is the soonest of them
        instants.append(next((i for o in after_scan if (i := fresh_at + o) > now), None))
    device_jobs = facts.ledger.by_device.get(device.id)
    if device_jobs:
        instants.extend(_job_instants(device_jobs))
    return min((i for i in instants if i is not None and i > now), default=None)


def _job_instants(device_jobs: Sequence[JobView]) -> list[datetime | None]:
    """When a device's jobs may change its plan: the pickup and run deadlines of those in
    flight, a scan's retry."""
    found: list[datetime | None] = []
    for job in device_jobs:
        if job.state.in_flight:
            found.extend((job.deadline, jobs.run_deadline(job)))
        if job.kind is JobKind.SCAN and job.updated_at is not None:
            found.append(job.updated_at + SCAN_RETRY_AFTER)
    return found
