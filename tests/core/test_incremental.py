"""The incremental planner gives exactly the plan `plan()` gives, and counts its work."""

from __future__ import annotations

import pytest

from controller.core.incremental import Changes, IncrementalPlanner, PassCounts
from controller.core.plan import plan
from controller.kinds.common import OsFamily
from controller.testing.fleets import SUNDAY_OPEN, desired, device, observed, scan

FLEET = observed(
    (device("win-01"), scan("KB-SEC", "KB-CRIT")),
    (device("win-02", online=False), scan("KB-SEC")),
    (device("lin-01", os=OsFamily.LINUX), scan("USN-1-1")),
    (device("lin-02", os=OsFamily.LINUX), None),
)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(Changes.EVERYTHING, id="everything"),
        pytest.param(Changes(devices=frozenset({"id-win-01"})), id="one-device"),
        pytest.param(Changes(catalogue=True), id="catalogue"),
        pytest.param(Changes(), id="nothing"),
    ],
)
def test_the_plan_equals_a_full_pass(changes: Changes) -> None:
    """Whatever the caller says changed, the plan is the one `plan()` computes."""
    policy = desired()
    planner = IncrementalPlanner()
    first = planner.plan(policy, FLEET, now=SUNDAY_OPEN)
    again = planner.plan(policy, FLEET, now=SUNDAY_OPEN, changes=changes)
    assert (plan(policy, FLEET, now=SUNDAY_OPEN),) * 2 == (first, again)


def test_counts_say_how_many_devices_were_planned() -> None:
    """Nothing planned before the first call; a full pass plans every device."""
    planner = IncrementalPlanner()
    before = planner.last
    planner.plan(desired(), FLEET, now=SUNDAY_OPEN)
    assert (PassCounts(planned=0, reused=0), PassCounts(planned=4, reused=0)) == (
        before,
        planner.last,
    )


def test_everything_is_a_full_pass_request() -> None:
    """`Changes.EVERYTHING` is the default and says nothing more specific."""
    assert (True, frozenset(), False) == (
        Changes.EVERYTHING.everything,
        Changes.EVERYTHING.devices,
        Changes.EVERYTHING.catalogue,
    )


# Memory (issue 14 item 7): a million-device plan holds per device only what differs, so
# values equal across devices are one object. These checks fail if a copy is made per device.
TWINS = observed(
    (device("win-01"), scan("KB-SEC", "KB-CRIT", "KB-ANCIENT")),
    (device("win-02"), scan("KB-SEC", "KB-CRIT", "KB-ANCIENT")),
)


def test_devices_with_equal_facts_share_one_facts_key() -> None:
    """Two devices with the same tenant, OS and labels hold the very same facts tuple."""
    planner = IncrementalPlanner()
    planner.plan(desired(), TWINS, now=SUNDAY_OPEN)
    memory = planner._memory
    assert memory is not None
    assert memory.facts["id-win-01"] is memory.facts["id-win-02"]


def test_devices_with_equal_scans_share_their_patch_tuples() -> None:
    """Equal, non-empty patch lists of two devices (summary, compliance) are one tuple."""
    planner = IncrementalPlanner()
    the_plan = planner.plan(desired(), TWINS, now=SUNDAY_OPEN)
    one, two = the_plan.devices
    first, second = (r for r in the_plan.compliance if r.missing or r.failed)
    lists = [
        (one.installable, two.installable),
        (first.missing, second.missing),
    ]
    assert all(a and a is b for a, b in lists), lists


def test_devices_holding_no_condition_share_one_empty_set() -> None:
    """Device plans with no condition alert hold one shared empty frozenset."""
    planner = IncrementalPlanner()
    planner.plan(desired(), TWINS, now=SUNDAY_OPEN)
    assert planner._memory is not None
    one, two = (planner._memory.plans[i].holding for i in ("id-win-01", "id-win-02"))
    assert (frozenset(), True) == (one, one is two)


def test_devices_are_indexed_by_id_after_a_pass() -> None:
    """`devices` is empty before the first call, then maps each device id to its view."""
    planner = IncrementalPlanner()
    before = dict(planner.devices)
    planner.plan(desired(), TWINS, now=SUNDAY_OPEN)
    assert ({}, ["id-win-01", "id-win-02"]) == (before, sorted(planner.devices))
