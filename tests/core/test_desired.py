"""The desired state: objects indexed by kind, tenant and name; what a tenant sees."""

from __future__ import annotations

import pytest

from controller.core.desired import DesiredState, count_by_kind
from controller.kinds import Baseline, DeviceGroup, PatchWindow
from controller.testing.fleets import desired

RETAIL_WINDOWS = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: windows, tenant: acme/retail}
spec: {selector: {os: windows, labels: {shop: "yes"}}}
"""


@pytest.fixture(scope="module")
def state() -> DesiredState:
    """The planner tests' policy with a second `windows` group, owned by acme/retail."""
    return desired(RETAIL_WINDOWS)


@pytest.mark.parametrize(
    ("viewer", "owner"),
    [
        pytest.param("acme/retail", "acme/retail", id="own-object-first"),
        pytest.param("acme", "acme", id="partner-sees-its-own"),
        pytest.param("acme/logistics", "acme", id="client-sees-its-partner-s"),
        pytest.param(None, "acme", id="global-viewer-takes-the-first"),
    ],
)
def test_a_tenant_sees_its_own_object_then_its_partner_s(
    state: DesiredState, viewer: str | None, owner: str
) -> None:
    """`visible` walks the tenant's lineage, nearest first, then the global scope."""
    found = state.visible(DeviceGroup, viewer, "windows")
    assert owner == (found.tenant if found else None)


def test_an_unrelated_tenant_sees_nothing(state: DesiredState) -> None:
    """Another partner's objects are not visible."""
    assert None is state.visible(DeviceGroup, "globex", "windows")


def test_get_matches_kind_tenant_and_name_exactly(state: DesiredState) -> None:
    """`get` does no lineage walk and no cross-kind match."""
    assert (True, None, None) == (
        state.get(Baseline, "acme", "win") is not None,
        state.get(Baseline, "acme/retail", "win"),
        state.get(PatchWindow, "acme", "win"),
    )


def test_objects_are_grouped_by_kind_and_counted(state: DesiredState) -> None:
    """The kind accessors and `count_by_kind` agree with the YAML the state came from."""
    assert (
        {
            "Baseline": 2,
            "DeviceGroup": 3,
            "PatchWindow": 1,
            "Tenant": 1,
            "Whitelist": 1,
        },
        ("lin", "win"),
        frozenset({"acme", "acme/retail"}),
        8,
    ) == (
        count_by_kind(state),
        tuple(sorted(b.name for b in state.baselines)),
        state.tenant_paths(),
        len(state),
    )


def test_the_empty_state_has_no_revision_and_no_objects() -> None:
    """What the controller plans against before it has read any policy."""
    empty = DesiredState.empty()
    assert (None, 0, ()) == (empty.revision, len(empty), empty.windows)
