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
