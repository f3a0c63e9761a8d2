"""`controller.core.targets`: which devices a policy object applies to (targets, groups,
selectors, exclusions, tenant scoping), on the planner tests' policy and devices."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core.observed import DeviceView
from controller.core.targets import (
    effective_device,
    group_contains,
    matches,
    named_devices,
    selector_matches,
)
from controller.kinds import Device, DeviceGroup
from controller.kinds.common import OsFamily, Selector, Targets
from controller.testing.fleets import desired, device

EXTRA = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: globex}
spec: {clients: [shop]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: frontends, tenant: acme/retail}
spec: {devices: [web-01, web-02], selector: {labels: {tier: front}}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: frontends, tenant: globex}
spec: {devices: [web-01]}
---
apiVersion: patchctl/v1
kind: Device
metadata: {name: db-01, tenant: acme/retail}
spec: {labels: {tier: back, env: prod}}
---
apiVersion: patchctl/v1
kind: Device
metadata: {name: bare, tenant: acme/retail}
spec: {}
"""

STATE = desired(EXTRA)
WIN = device("w1")
LIN = device("l1", os=OsFamily.LINUX)


def labelled(view: DeviceView, **labels: str) -> DeviceView:
    return replace(view, labels=labels)


def test_effective_device_declared_labels_win() -> None:
    """A declared Device's labels are merged over the agent's, the declared value winning."""
    agent = labelled(device("db-01"), tier="front", rack="r1")
    assert {"tier": "back", "rack": "r1", "env": "prod"} == dict(
        effective_device(agent, STATE).labels
    )


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(labelled(device("w9"), tier="front"), id="undeclared"),
        pytest.param(labelled(device("bare"), tier="front"), id="declared-without-labels"),
        pytest.param(labelled(device("db-01", tenant="acme"), tier="x"), id="other-tenant"),
    ],
)
def test_effective_device_unchanged(view: DeviceView) -> None:
    """Without declared labels in the device's own tenant the device is returned as it is."""
    assert effective_device(view, STATE) is view


SELECTOR_CASES = [
    pytest.param(Selector(), WIN, True, id="empty-matches-all"),
    pytest.param(Selector(os=OsFamily.WINDOWS), WIN, True, id="os"),
    pytest.param(Selector(os=OsFamily.LINUX), WIN, False, id="other-os"),
    pytest.param(Selector(os=OsFamily.WINDOWS), replace(WIN, os=None), False, id="unknown-os"),
    pytest.param(Selector(os_versions=("Windows Server 2022*",)), WIN, True, id="os-name-glob"),
    pytest.param(Selector(os_versions=("Ubuntu 24.*",)), LIN, True, id="name-and-version-glob"),
    pytest.param(Selector(os_versions=("24.04",)), LIN, True, id="version-alone"),
    pytest.param(Selector(os_versions=("ubuntu*",)), LIN, False, id="glob-case-sensitive"),
    pytest.param(Selector(os_versions=("22.04", "Debian*")), LIN, False, id="no-pattern-matches"),
    pytest.param(Selector(labels={"tier": "front"}), labelled(WIN, tier="front"), True, id="label"),
    pytest.param(
        Selector(labels={"tier": "front", "env": "prod"}),
        labelled(WIN, tier="front"),
        False,
        id="every-label-needed",
    ),
    pytest.param(
        Selector(labels={"tier": "front"}), labelled(WIN, tier="back"), False, id="label-value"
    ),
]


@pytest.mark.parametrize(("selector", "view", "expected"), SELECTOR_CASES)
def test_selector_matches(selector: Selector, view: DeviceView, expected: bool) -> None:
    """OS, OS-version globs (name, name and version, version) and every label must match."""
    assert expected == selector_matches(selector, view)


FRONTENDS = STATE.get(DeviceGroup, "acme/retail", "frontends")
assert FRONTENDS is not None

GROUP_CASES = [
    pytest.param(device("web-01"), True, id="listed"),
    pytest.param(labelled(device("w9"), tier="front"), True, id="by-selector"),
    pytest.param(device("w9"), False, id="neither"),
    pytest.param(device("web-01", tenant="acme"), False, id="partner-device-outside-client-group"),
    pytest.param(device("web-01", tenant="globex/shop"), False, id="other-tenant"),
]


@pytest.mark.parametrize(("view", "expected"), GROUP_CASES)
def test_group_contains(view: DeviceView, expected: bool) -> None:
    """A group holds its listed devices and its selector's matches, within its own tenant."""
    assert expected == group_contains(FRONTENDS, view)


def targets(**fields: object) -> Targets:
    return Targets.model_validate(fields)


MATCH_CASES = [
    pytest.param(targets(devices=["w1"]), "acme", WIN, True, id="named-device"),
    pytest.param(targets(groups=["windows"]), "acme", WIN, True, id="partner-group"),
    pytest.param(targets(groups=["windows"]), "acme", LIN, False, id="group-not-matching"),
    pytest.param(targets(selector={"os": "linux"}), "acme", LIN, True, id="selector"),
    pytest.param(targets(selector={"os": "linux"}), None, LIN, True, id="global-owner"),
    pytest.param(
        targets(groups=["frontends"]), "acme/retail", device("web-01"), True, id="client-group"
    ),
    pytest.param(
        targets(groups=["windows"], exclude={"devices": ["w1"]}),
        "acme",
        WIN,
        False,
        id="exclude-device",
    ),
    pytest.param(
        targets(devices=["web-01"], exclude={"groups": ["frontends"]}),
        "acme/retail",
        device("web-01"),
        False,
        id="exclude-group-beats-named-device",
    ),
    pytest.param(
        targets(groups=["windows"], exclude={"groups": ["frontends"]}),
        "acme/retail",
        WIN,
        True,
        id="exclude-group-not-containing",
    ),
    pytest.param(
        targets(devices=["w1"]),
        "acme/retail",
        device("w1", tenant="acme"),
        False,
        id="owner-below-device",
    ),
    pytest.param(targets(devices=["w1"]), "globex", WIN, False, id="other-tenant-owner"),
    pytest.param(targets(devices=["w1"]), "acme/ret", WIN, False, id="tenant-prefix-not-parent"),
    pytest.param(
        targets(groups=["frontends"]),
        "globex",
        device("web-01", tenant="globex/shop"),
        True,
        id="globex-group",
    ),
    pytest.param(
        targets(groups=["frontends"]),
        "acme/retail",
        device("web-01", tenant="globex/shop"),
        False,
        id="no-cross-tenant",
    ),
    pytest.param(targets(), "acme", WIN, False, id="empty-targets"),
]


@pytest.mark.parametrize(("object_targets", "owner", "view", "expected"), MATCH_CASES)
def test_matches(
    object_targets: Targets, owner: str | None, view: DeviceView, expected: bool
) -> None:
    """Tenant scope first, then exclusions, then devices, groups and selector."""
    assert expected == matches(object_targets, owner=owner, device=view, desired=STATE)


def test_named_devices() -> None:
    """Every device a group, a policy's targets or exclusions, or a Device document names."""
    extra = EXTRA + (
        "---\napiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a, tenant: acme}\n"
        "spec: {patches: [KB1], reason: r, targets: {devices: [app-01], exclude: {devices: [app-02]}}}\n"
    )
    assert frozenset({"web-01", "web-02", "db-01", "bare", "app-01", "app-02"}) == named_devices(
        desired(extra)
    )


def test_declared_device_object_is_loaded() -> None:
    """Sanity of the fixture: `db-01` is a declared Device of acme/retail (guards the label tests)."""
    declared = STATE.get(Device, "acme/retail", "db-01")
    assert {"tier": "back", "env": "prod"} == (declared.spec.labels if declared else None)
