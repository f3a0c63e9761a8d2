"""The incremental planner gives the full plan (issue 14 item 1), and plans few devices when few
changed: seeded random histories of agent reports, job progress, applied plans, policy commits,
catalogue changes, enrolments and the clock crossing window boundaries, deadlines and midnight.

Real policy loading and real planner values; only the clock is ours (each step's `now`).
"""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache

import pytest

from controller.core import incremental
from controller.core.desired import DesiredState
from controller.core.explain import explain
from controller.core.incremental import Changes, IncrementalPlanner
from controller.core.jobs import EndReason
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobLedger,
    JobState,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
)
from controller.core.patches import PatchRecord
from controller.core.plan import Plan, plan, plan_alone
from controller.core.planning import fleet
from controller.kinds.common import Classification, OsFamily
from controller.testing import fleets as planning
from controller.testing.fleets import CATALOGUE, SUNDAY_OPEN
from controller.vocabularies import EventType

SEEDS = range(24)
STEPS = 45
START = SUNDAY_OPEN - timedelta(hours=3)  # Saturday night: the weekly window opens at 01:00 UTC
WINDOWS_PATCHES = [p for p, r in CATALOGUE.items() if r.os is OsFamily.WINDOWS]
LINUX_PATCHES = [p for p, r in CATALOGUE.items() if r.os is OsFamily.LINUX]

APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: hotfix, tenant: acme/retail}
spec: {patches: [PATCHES], targets: {groups: [windows, linux]}, reason: PR 7EXPIRES}
"""
CANARY = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: canary, tenant: acme}
spec: {selector: {labels: {ring: canary}}}
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: hourly, tenant: acme}
spec:
  targets: {groups: [canary]}
  recurrence: {cron: "0 * * * *"}
  timezone: UTC
  duration: 40m
  cutoff: 10m
  approval: auto
  missedWindow: catch-up
  catchUpWithin: 2h
  rollout: {maxConcurrent: LIMIT, maxFailures: 1}
  preScript: prepare
  suspend: SUSPEND
"""
SCRIPTS = """\
apiVersion: patchctl/v1
kind: Script
metadata: {name: prepare, tenant: acme}
spec: {os: linux, shell: bash, content: 'echo CONTENT'}
---
apiVersion: patchctl/v1
kind: ScriptJob
metadata: {name: tidy, tenant: acme}
spec: {script: prepare, targets: {groups: [linux]}, recurrence: {cron: "15 */6 * * *"}}
"""
SCAN_SCHEDULE = """\
apiVersion: patchctl/v1
kind: ScanSchedule
metadata: {name: often, tenant: acme}
spec: {targets: {groups: [linux]}, every: 2h}
"""
DECLARED = """\
apiVersion: patchctl/v1
kind: Device
metadata: {name: w3, tenant: acme/retail}
spec: {labels: {ring: canary}}
"""


@dataclass(frozen=True)
class Policy:
    """One commit's policy, as choices; `state()` loads it (cached: equal choices, one load)."""

    approved: tuple[str, ...] = ()
    expires: str | None = None
    canary: str | None = None  # the hourly window's maxConcurrent, None: no canary window
    canary_suspended: bool = False
    scripts: str | None = None  # the script's content, None: no script job
    scan_schedule: bool = False
    declared: bool = False
    concurrent: str = "100%"
    failures: str = "100%"
    suspend: bool = False

    def state(self) -> DesiredState:
        return _load(self)


@cache
def _load(policy: Policy) -> DesiredState:
    parts = []
    if policy.approved:
        expires = f", expires: {policy.expires}" if policy.expires else ""
        parts.append(
            APPROVAL.replace("PATCHES", ", ".join(policy.approved)).replace("EXPIRES", expires)
        )
    if policy.canary is not None:
        suspend = str(policy.canary_suspended).lower()
        parts.append(CANARY.replace("LIMIT", policy.canary).replace("SUSPEND", suspend))
    if policy.scripts is not None or policy.canary is not None:
        parts.append(SCRIPTS.replace("CONTENT", policy.scripts or "ready"))
    if policy.scan_schedule:
        parts.append(SCAN_SCHEDULE)
    if policy.declared:
        parts.append(DECLARED)
    return planning.desired(
        "---\n".join(parts),
        concurrent=policy.concurrent,
        failures=policy.failures,
        suspend=policy.suspend,
    )


def random_policy(rng: random.Random) -> Policy:
    return Policy(
        approved=tuple(rng.sample(["KB-BUG", "KB-NEW", "USN-2-1", "KB-BAD"], rng.randint(0, 3))),
        expires=rng.choice([None, "2026-11-28", "2026-11-29", "2026-11-30"]),
        canary=rng.choice([None, "1", "2", "100%"]),
        canary_suspended=rng.random() < 0.2,
        scripts=rng.choice([None, "ready", "steady"]),
        scan_schedule=rng.random() < 0.5,
        declared=rng.random() < 0.5,
        concurrent=rng.choice(["100%", "100%", "3", "1", "25%"]),
        failures=rng.choice(["100%", "100%", "0", "1"]),
        suspend=rng.random() < 0.1,
    )


@dataclass
class World:
    """The observed state as the runtime keeps it, changed one step at a time."""

    rng: random.Random
    now: datetime
    policy: Policy
    devices: dict[str, DeviceView] = field(default_factory=dict)
    scans: dict[str, ScanView] = field(default_factory=dict)
    jobs: dict[str, JobView] = field(default_factory=dict)
    catalogue: dict[str, PatchRecord] = field(default_factory=lambda: dict(CATALOGUE))
    enrolled: int = 0
    desired: DesiredState = field(init=False)

    def __post_init__(self) -> None:
        self.desired = self.policy.state()

    def observed(self) -> ObservedState:
        return ObservedState(
            devices=tuple(self.devices.values()),
            scans=dict(self.scans),
            jobs=tuple(self.jobs.values()),
            catalogue=dict(self.catalogue),
        )

    def enrol(self) -> str:
        rng = self.rng
        self.enrolled += 1
        os = rng.choice([OsFamily.WINDOWS, OsFamily.LINUX])
        name = f"{'w' if os is OsFamily.WINDOWS else 'l'}{self.enrolled}"
        device = planning.device(name, os=os, now=self.now, online=rng.random() < 0.85)
        labels = {"ring": "canary"} if rng.random() < 0.3 else {}
        role = "gateway" if rng.random() < 0.05 else "server"
        self.devices[device.id] = replace(device, labels=labels, role=role)
        if rng.random() < 0.8:
            self.report_scan(device.id)
        return device.id

    def report_scan(self, device_id: str) -> None:
        rng = self.rng
        device = self.devices[device_id]
        pool = WINDOWS_PATCHES if device.os is OsFamily.WINDOWS else LINUX_PATCHES
        pool = pool + [p for p in self.catalogue if p.startswith("KB-X")] * (
            device.os is OsFamily.WINDOWS
        )
        missing = tuple(rng.sample(pool, rng.randint(0, min(4, len(pool)))))
        self.scans[device_id] = ScanView(
            scanned_at=self.now - timedelta(minutes=rng.randint(0, 5)),
            received_at=self.now,
            reboot_required=rng.random() < 0.2,
            missing=missing,
        )
        self.devices[device_id] = replace(device, last_seen=self.now)


# --- the steps: each changes the world and says which devices it touched -----------------


def step_scans(world: World) -> set[str]:
    """Agents on a few devices report a fresh scan."""
    touched = set(world.rng.sample(sorted(world.devices), min(3, len(world.devices))))
    for device_id in touched:
        world.report_scan(device_id)
    return touched


def step_heartbeats(world: World) -> set[str]:
    """A few agents check in (or go silent: an old `last_seen`)."""
    touched = set(world.rng.sample(sorted(world.devices), min(4, len(world.devices))))
    for device_id in touched:
        seen = world.now if world.rng.random() < 0.8 else world.now - timedelta(hours=3)
        world.devices[device_id] = replace(world.devices[device_id], last_seen=seen)
    return touched


def step_jobs(world: World) -> set[str]:
    """Agents move some jobs in flight on: taken, downloading, succeeded or failed."""
    rng = world.rng
    flying = [j for j in world.jobs.values() if j.state.in_flight]
    touched: set[str] = set()
    for job in rng.sample(flying, min(4, len(flying))):
        state = rng.choice(
            [JobState.ACKED, JobState.DOWNLOADING, JobState.SUCCEEDED, JobState.FAILED]
        )
        results: dict[str, PatchResult] = {}
        if job.kind is JobKind.INSTALL and not state.in_flight:
            results = {
                p: rng.choice([PatchResult.INSTALLED, PatchResult.FAILED]) for p in job.patch_ids
            }
        world.jobs[job.id] = replace(
            job,
            state=state,
            updated_at=world.now,
            started_at=job.started_at or world.now,
            results=results,
            reboot_required=state is JobState.SUCCEEDED and rng.random() < 0.5,
            reasons={p: "exit 1" for p, r in results.items() if r is PatchResult.FAILED},
        )
        touched.add(job.device_id)
        if (
            job.kind is JobKind.SCAN
            and state is JobState.SUCCEEDED
            and job.device_id in world.devices
        ):
            world.report_scan(job.device_id)
    return touched


def apply_plan(world: World, the_plan: Plan) -> set[str]:
    """The runtime applies a plan: issued jobs join the ledger, ended ones change state."""
    touched: set[str] = set()
    for spec in the_plan.issue:
        world.jobs[spec.id] = JobView(
            id=spec.id,
            device_id=spec.device_id,
            kind=spec.kind,
            state=JobState.PENDING,
            patch_ids=spec.patch_ids,
            window=spec.window,
            occurrence=spec.occurrence,
            created_at=world.now,
            updated_at=world.now,
            deadline=spec.deadline,
            run_timeout=spec.run_timeout,
        )
        touched.add(spec.device_id)
    endings = [
        (the_plan.cancel, JobState.CANCELLED, EndReason.NOT_INSTALLABLE),
        (the_plan.supersede, JobState.CANCELLED, EndReason.SUPERSEDED),
        (the_plan.expire, JobState.EXPIRED, EndReason.NO_AGENT),
        (the_plan.time_out, JobState.FAILED, EndReason.TIMED_OUT),
    ]
    for ids, state, reason in endings:
        for job_id in ids:
            job = world.jobs[job_id]
            world.jobs[job_id] = replace(job, state=state, end_reason=reason, updated_at=world.now)
            touched.add(job.device_id)
    return touched


def step_enrolment(world: World) -> set[str]:
    """A device enrols, one retires (its jobs stay in the ledger), is relabelled or renamed."""
    rng = world.rng
    choice = rng.random()
    if choice < 0.4 or len(world.devices) < 5:
        return {world.enrol()}
    device_id = rng.choice(sorted(world.devices))
    if choice < 0.7:
        del world.devices[device_id]
        world.scans.pop(device_id, None)
        return {device_id}
    device = world.devices[device_id]
    if choice < 0.85:
        labels = {} if device.labels else {"ring": "canary"}
        world.devices[device_id] = replace(device, labels=labels)
    else:  # renamed: its place in the planner's order moves
        world.devices[device_id] = replace(device, name=f"z{device.name}")
    return {device_id}


def step_catalogue(world: World) -> None:
    """A feed import: a new Windows patch, or a record reclassified."""
    rng = world.rng
    if rng.random() < 0.5:
        patch_id = f"KB-X{len(world.catalogue)}"
        world.catalogue[patch_id] = planning.patch(patch_id, age_days=rng.randint(0, 20))
    else:
        world.catalogue["KB-BUG"] = planning.patch(
            "KB-BUG", classification=rng.choice(list(Classification))
        )


def step_clock(world: World) -> None:
    """Time passes: a minute, the rest of the hour, past a cutoff or a deadline, a day."""
    delta = world.rng.choice(
        [
            timedelta(minutes=1),
            timedelta(minutes=17),
            timedelta(minutes=50),
            timedelta(hours=2, minutes=5),
            timedelta(hours=7),
            timedelta(days=1),
        ]
    )
    world.now += delta


@dataclass
class Tally:
    """Planning work over the steps that touched few devices; alerts given as fresh (those
    the reconciler sends the store) against alerts planned, over every step."""

    planned: int = 0
    fleet: int = 0
    fresh: int = 0
    alerts: int = 0


@dataclass
class Step:
    """What one step did: devices touched, a catalogue change, and whether it is a small one
    (a few agent reports: planning work should be small)."""

    touched: set[str] = field(default_factory=set)
    catalogue: bool = False
    few: bool = False


def take_step(world: World, roll: float) -> Step:
    """One random step; policy commits change `world.desired`."""
    rng = world.rng
    if roll < 0.2:
        return Step(step_scans(world), few=True)
    if roll < 0.35:
        return Step(step_jobs(world))
    if roll < 0.45:
        return Step(step_heartbeats(world), few=True)
    if roll < 0.55:
        world.policy = random_policy(rng)
        world.desired = world.policy.state()
    elif roll < 0.6:
        world.desired = replace_revision(world.desired, rng)
    elif roll < 0.65:
        step_catalogue(world)
        return Step(catalogue=True)
    elif roll < 0.75:
        return Step(step_enrolment(world))
    else:
        step_clock(world)
    return Step()


def run_history(
    seed: int, tally: Tally, each: Callable[[World, ObservedState, Plan], None] | None = None
) -> None:
    """One seeded history; `each` is shown every step's world, observed state and full plan."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible story, not a secret
    world = World(rng=rng, now=START + timedelta(minutes=rng.randint(0, 300)), policy=Policy())
    for _ in range(rng.randint(15, 40)):
        world.enrol()
    planner = IncrementalPlanner()
    the_plan = planner.plan(world.desired, world.observed(), now=world.now)
    ledger = JobLedger()
    for number in range(STEPS):
        # the runtime applies most plans at once; a failed apply leaves the ledger as it was
        applied = apply_plan(world, the_plan) if rng.random() < 0.85 else set()
        step = take_step(world, rng.random())
        observed = world.observed()
        observed = replace(observed, jobs=reusing(ledger, observed.jobs))
        ledger = observed.jobs
        changes = Changes(devices=frozenset(step.touched | applied), catalogue=step.catalogue)
        expected = plan(world.desired, observed, now=world.now)
        if each is not None:
            each(world, observed, expected)
        before = {alert.key for alert in the_plan.alerts}
        the_plan = planner.plan(world.desired, observed, now=world.now, changes=changes)
        assert_same(expected, the_plan, f"seed {seed} step {number}")
        # what the reconciler sends the store: every alert the plan before did not hold
        assert planner.fresh_alerts is not None
        fresh = {alert.key for alert in planner.fresh_alerts}
        new = {alert.key for alert in the_plan.alerts} - before
        assert new <= fresh, f"seed {seed} step {number}: {sorted(new - fresh)[:5]} not sent"
        tally.fresh += len(fresh)
        tally.alerts += len(the_plan.alerts)
        if step.few:
            tally.planned += planner.last.planned
            tally.fleet += len(world.devices)


def reusing(before: JobLedger, after: JobLedger) -> JobLedger:
    """`after` as the service's observer answers it: the very ledger of the pass before when
    no job changed, else each device's entry the very object it was when its jobs are equal
    (the observer reads again only the devices that changed; the planner finds the others by
    identity)."""
    if after == before:
        return before
    kept = before.by_device
    return JobLedger(
        {
            device_id: was if (was := kept.get(device_id)) == jobs else jobs
            for device_id, jobs in after.by_device.items()
        }
    )


def replace_revision(desired: DesiredState, rng: random.Random) -> DesiredState:
    """A commit that changes nothing a device reads: the same policy at a new revision."""
    return replace(desired, revision=f"main@sha1:{rng.getrandbits(40):010x}")


def assert_same(expected: Plan, actual: Plan, where: str) -> None:
    for name in Plan.__dataclass_fields__:
        assert getattr(expected, name) == getattr(actual, name), f"{where}: {name} differs"


def test_incremental_plans_equal_full_plans_over_random_histories() -> None:
    """Over seeded random histories every incremental plan equals the full plan, and steps that
    touch a few devices plan well under half the fleet."""
    tally = Tally()
    for seed in SEEDS:
        run_history(seed, tally)
    assert tally.fleet > 0
    assert tally.planned < tally.fleet * 0.35, tally
    assert tally.fresh < tally.alerts * 0.5, tally  # a pass sends what it changed, not all


def test_a_device_planned_alone_has_its_plan_in_the_fleets() -> None:
    """`plan_alone` (what `explain` asks first) answers, for every device at every step of the
    random histories, the summary, compliance, jobs and alerts the fleet's plan gives it, or
    None when its plan read a window's rollout limits; both happen."""
    answered: list[bool] = []

    def check(world: World, observed: ObservedState, expected: Plan) -> None:
        summaries = {summary.device_id: summary for summary in expected.devices}
        for n, device in enumerate(fleet.in_order(observed, world.desired)):
            alone = plan_alone(world.desired, observed, device, now=world.now)
            answered.append(alone is not None)
            if alone is None or n < 2:  # explain reads the device's own ledger, the fleet's
                own = replace(  # only when it must plan the fleet
                    observed, jobs=tuple(j for j in observed.jobs if j.device_id == device.id)
                )
                assert explain(world.desired, observed, device, now=world.now) == explain(
                    world.desired, own, device, now=world.now, fleet=lambda: observed
                )
            if alone is None:
                continue
            assert summaries[device.id] == alone.summary
            assert [r for r in expected.compliance if r.device_id == device.id] == list(
                alone.compliance
            )
            assert [j for j in expected.issue if j.device_id == device.id] == list(alone.issue)
            assert set(alone.alerts) <= set(expected.alerts)

    for seed in SEEDS[:8]:
        run_history(seed, Tally(), check)
    assert answered.count(True) > len(answered) * 0.5
    assert answered.count(False) > 0


@pytest.mark.parametrize("touched", [0, 1, 3], ids=["nothing", "one-device", "three-devices"])
def test_a_settled_fleet_plans_only_what_changed(touched: int) -> None:
    """Once its plan is applied, a fleet re-plans exactly the devices a report touched."""
    world, planner = settled_world()
    desired = world.desired
    ids = sorted(world.devices)[:touched]
    for device_id in ids:
        world.devices[device_id] = replace(world.devices[device_id], last_seen=world.now)
    observed = world.observed()
    actual = planner.plan(desired, observed, now=world.now, changes=Changes(frozenset(ids)))
    assert_same(plan(desired, observed, now=world.now), actual, "settled fleet")
    assert (planner.last.planned, planner.last.reused) == (touched, len(world.devices) - touched)


def settled_world() -> tuple[World, IncrementalPlanner]:
    """60 scanned devices before the window opens, the first plan applied and planned again."""
    rng = random.Random(5)  # noqa: S311 - a reproducible fleet, not a secret
    world = World(rng=rng, now=SUNDAY_OPEN - timedelta(hours=6), policy=Policy())
    for _ in range(60):
        world.enrol()
    for device_id in world.devices:
        world.report_scan(device_id)
    planner = IncrementalPlanner()
    apply_plan(world, planner.plan(world.desired, world.observed(), now=world.now))
    planner.plan(world.desired, world.observed(), now=world.now)
    return world, planner


@pytest.mark.parametrize(
    ("policy", "os"),
    [(Policy(scan_schedule=True), OsFamily.LINUX), (Policy(), None)],
    ids=["linux-scan-schedule", "same-content-new-object"],
)
def test_a_commit_plans_only_devices_whose_policy_set_changed(
    policy: Policy, os: OsFamily | None
) -> None:
    """A commit re-plans the devices its objects target (compared by content), no others."""
    world, planner = settled_world()
    desired = replace_revision(_load.__wrapped__(policy), world.rng)
    observed = world.observed()
    actual = planner.plan(desired, observed, now=world.now, changes=Changes())
    assert_same(plan(desired, observed, now=world.now), actual, "commit")
    expected = sum(1 for d in world.devices.values() if d.os is os)
    assert planner.last.planned == expected


def test_a_commit_declaring_one_device_plans_only_that_device() -> None:
    """A commit whose only change is a `Device` declaration (labels that move the device into
    the canary ring) re-plans that device alone, and gives the full plan."""
    world, planner = settled_world()
    name = min(d.name for d in world.devices.values())
    declared = DECLARED.replace("name: w3", f"name: {name}")
    desired = planning.desired(declared)
    observed = world.observed()
    actual = planner.plan(desired, observed, now=world.now, changes=Changes())
    assert_same(plan(desired, observed, now=world.now), actual, "declared device")
    assert planner.last.planned == 1


def test_a_commit_after_job_endings_gives_the_full_plan() -> None:
    """Jobs ended by the agents in the same pass as a commit that changes every policy set:
    the incremental plan is the full plan."""
    world, planner = settled_world()
    touched = step_jobs(world)
    desired = Policy(approved=("KB-BUG", "USN-2-1"), scan_schedule=True).state()
    observed = world.observed()
    actual = planner.plan(desired, observed, now=world.now, changes=Changes(frozenset(touched)))
    assert_same(plan(desired, observed, now=world.now), actual, "commit and job endings")


def test_the_planner_keeps_no_earlier_observed_state() -> None:
    """Between commits the planner keeps its policy sets, but not the observed state they were
    built from: each pass's scans and jobs can be freed once the next pass has run."""
    world, planner = settled_world()
    earlier = world.observed()
    desired = replace_revision(world.desired, world.rng)  # a commit: policy sets built anew
    planner.plan(desired, earlier, now=world.now, changes=Changes())
    gone = weakref.ref(earlier)
    planner.plan(desired, world.observed(), now=world.now, changes=Changes())
    del earlier
    gc.collect()
    assert gone() is None


def offline_in_open_window(world: World, count: int) -> DesiredState:
    """Five minutes into the window, `count` devices silent for three hours (each gets an
    `AgentOfflineInWindow` alert); answers the policy that approves the window's patches."""
    world.now = SUNDAY_OPEN + timedelta(minutes=5)
    for device_id in list(world.devices)[:count]:
        world.devices[device_id] = replace(
            world.devices[device_id], last_seen=world.now - timedelta(hours=3)
        )
    return Policy(approved=("KB-BUG", "KB-NEW", "USN-2-1")).state()


def new_keys_are_fresh(planner: IncrementalPlanner, before: Plan, after: Plan) -> None:
    assert planner.fresh_alerts is not None
    new = {a.key for a in after.alerts} - {a.key for a in before.alerts}
    missing = new - {a.key for a in planner.fresh_alerts}
    assert new
    assert not missing, sorted(missing)[:5]


def test_a_device_enrolled_again_gives_its_alerts_anew() -> None:
    """A device retired and enrolled again (same id) with the alerts it had: the plan before
    did not hold them, so the pass gives them as fresh."""
    world, planner = settled_world()
    desired = offline_in_open_window(world, 10)
    first = planner.plan(desired, world.observed(), now=world.now)
    target = next(a.device_id for a in first.alerts if a.type is EventType.AGENT_OFFLINE_IN_WINDOW)
    assert target is not None
    retired = world.devices.pop(target)
    without = planner.plan(
        desired, world.observed(), now=world.now, changes=Changes(frozenset({target}))
    )
    world.devices[target] = retired
    again = planner.plan(
        desired, world.observed(), now=world.now, changes=Changes(frozenset({target}))
    )
    assert_same(plan(desired, world.observed(), now=world.now), again, "enrolled again")
    new_keys_are_fresh(planner, without, again)


def test_a_call_that_failed_leaves_no_alert_counted_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A planner call that raises half-way (on its last device) forgets the alerts given:
    the next call gives every alert of its plan again (`fresh_alerts` None), not only those
    the failed call did not reach."""
    world, planner = settled_world()
    before = planner.plan(world.desired, world.observed(), now=world.now)
    desired = offline_in_open_window(world, 10)
    planned = 0

    def failing_on_the_last(*args: object, **kwargs: object) -> object:
        nonlocal planned
        planned += 1
        if planned == len(world.devices):
            raise RuntimeError("planning failed")
        return real(*args, **kwargs)

    real = incremental.plan_device
    monkeypatch.setattr(incremental, "plan_device", failing_on_the_last)
    observed = world.observed()
    with pytest.raises(RuntimeError):
        planner.plan(desired, observed, now=world.now, changes=Changes(frozenset(world.devices)))
    monkeypatch.setattr(incremental, "plan_device", real)
    after = planner.plan(desired, observed, now=world.now)
    assert planner.fresh_alerts is None
    assert {a.key for a in after.alerts} - {a.key for a in before.alerts}
