"""Which devices a policy object applies to.

Purely computational: targets, groups and selectors are evaluated against a device's current
facts; the caller caches results per distinct set of facts.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase

from controller.core.desired import DesiredState
from controller.core.observed import DeviceView
from controller.kinds import Device, DeviceGroup
from controller.kinds.common import Selector, Targets, tenant_contains


def effective_device(device: DeviceView, desired: DesiredState) -> DeviceView:
    """The device with its declared Device labels merged over the agent's (declared win)."""
    declared = desired.get(Device, device.tenant, device.name)
    if declared is None or not declared.spec.labels:
        return device
    return replace(device, labels={**device.labels, **declared.spec.labels})


def selector_matches(selector: Selector, device: DeviceView) -> bool:
    if selector.os is not None and selector.os != device.os:
        return False
    if selector.os_versions and not _os_version_matches(selector.os_versions, device):
        return False
    return all(device.labels.get(key) == value for key, value in selector.labels.items())


def _os_version_matches(patterns: tuple[str, ...], device: DeviceView) -> bool:
    candidates = (
        device.os_name,
        f"{device.os_name} {device.os_version}".strip(),
        device.os_version,
    )
    return any(fnmatchcase(text, pattern) for pattern in patterns for text in candidates if text)


def group_contains(group: DeviceGroup, device: DeviceView) -> bool:
    if not tenant_contains(group.tenant, device.tenant):
        return False
    if device.name in group.spec.devices:
        return True
    return group.spec.selector is not None and selector_matches(group.spec.selector, device)


def matches(
    targets: Targets, *, owner: str | None, device: DeviceView, desired: DesiredState
) -> bool:
    """Whether an object of tenant `owner` with these targets applies to `device`."""
    if not tenant_contains(owner, device.tenant):
        return False
    if device.name in targets.exclude.devices:
        return False
    if any(_in_group(name, device, desired) for name in targets.exclude.groups):
        return False
    if device.name in targets.devices:
        return True
    if any(_in_group(name, device, desired) for name in targets.groups):
        return True
    return targets.selector is not None and selector_matches(targets.selector, device)


def _in_group(name: str, device: DeviceView, desired: DesiredState) -> bool:
    # Resolved from the device's tenant upwards: the loader already checked that the owner can
    # see the group, and the owner's tenant contains the device's.
    group = desired.visible(DeviceGroup, device.tenant, name)
    return group is not None and group_contains(group, device)


def named_devices(desired: DesiredState) -> frozenset[str]:
    """Every device name a policy or group lists: those devices need per-name evaluation."""
    names: set[str] = set()
    for group in desired.groups:
        names.update(group.spec.devices)
    for obj in desired.objects:
        targets = getattr(getattr(obj, "spec", None), "targets", None)
        if isinstance(targets, Targets):
            names.update(targets.devices)
            names.update(targets.exclude.devices)
    names.update(device.name for device in desired.devices)
    return frozenset(names)
