"""Cross-reference checks over a whole policy tree.

Purely computational: takes validated objects, returns findings (errors and warnings) that name
the object and the field; the caller maps them to file positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from controller.core.desired import DesiredState
from controller.kinds import (
    ApprovalProposal,
    Baseline,
    Device,
    DeviceGroup,
    Document,
    PatchWindow,
    Script,
    ScriptJob,
    Tenant,
    Whitelist,
)
from controller.kinds.common import OsFamily, Targets, tenant_contains, tenant_parent
from controller.kinds.windows import ApprovalMode


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem with one object: the index of the object, the field path, what is wrong."""

    index: int  # position of the object in the sequence that was checked
    field_path: tuple[str | int, ...]
    message: str
    warning: bool = False
    related: int | None = None  # another object the message refers to (the first of a duplicate)


def detect_findings(objects: Sequence[Document]) -> list[Finding]:
    """Every cross-reference error and warning of a policy tree, in object order."""
    duplicates = list(_duplicates(objects))
    state = DesiredState(revision=None, objects=tuple(objects))
    findings = [*duplicates]
    for index, obj in enumerate(objects):
        tenant_findings = list(_tenant_findings(index, obj, state))
        findings.extend(tenant_findings)
        if tenant_findings:
            continue  # references cannot be resolved in an unknown tenant: one error is enough
        findings.extend(_reference_findings(index, obj, state))
        findings.extend(_linux_warnings(index, obj, state))
        findings.extend(_device_warnings(index, obj, state))
    return sorted(findings, key=lambda f: (f.index, f.warning))


def _duplicates(objects: Sequence[Document]) -> Iterator[Finding]:
    first_seen: dict[object, int] = {}
    for index, obj in enumerate(objects):
        if obj.key in first_seen:
            yield Finding(
                index,
                ("metadata", "name"),
                f"duplicate {obj.KIND} {obj.name!r} in tenant {obj.tenant or '(every tenant)'}",
                related=first_seen[obj.key],
            )
        else:
            first_seen[obj.key] = index


def _tenant_findings(index: int, obj: Document, state: DesiredState) -> Iterator[Finding]:
    if isinstance(obj, Tenant):
        if obj.tenant is not None:
            yield Finding(
                index, ("metadata", "tenant"), "a Tenant is a partner: omit metadata.tenant"
            )
        return
    if obj.tenant is None:
        return
    declared = state.tenant_paths()
    partner = tenant_parent(obj.tenant) or obj.tenant
    if partner not in declared:
        known = ", ".join(sorted(declared)) or "none"
        yield Finding(
            index,
            ("metadata", "tenant"),
            f"tenant {partner!r} is not declared by any Tenant (known: {known})",
        )
    elif obj.tenant not in declared:
        client = obj.tenant.split("/", 1)[1]
        yield Finding(
            index,
            ("metadata", "tenant"),
            f"client {client!r} is not listed in spec.clients of Tenant {partner!r}",
        )


def _reference_findings(index: int, obj: Document, state: DesiredState) -> Iterator[Finding]:
    targets = targets_of(obj)
    if targets is not None:
        yield from _target_findings(index, obj, targets, state)
    if isinstance(obj, PatchWindow):
        for field_name, script in (
            ("preScript", obj.spec.pre_script),
            ("postScript", obj.spec.post_script),
        ):
            if script is not None:
                yield from _script_findings(index, obj, ("spec", field_name), script, state)
    if isinstance(obj, ScriptJob):
        yield from _script_findings(index, obj, ("spec", "script"), obj.spec.script, state)
    if isinstance(obj, ApprovalProposal):
        yield from _baseline_findings(index, obj, state)


def _target_findings(
    index: int, obj: Document, targets: Targets, state: DesiredState
) -> Iterator[Finding]:
    named = (
        (("spec", "targets", "groups"), targets.groups),
        (("spec", "targets", "exclude", "groups"), targets.exclude.groups),
    )
    for path, names in named:
        for position, group in enumerate(names):
            if state.visible(DeviceGroup, obj.tenant, group) is None:
                yield Finding(
                    index,
                    (*path, position),
                    f"no DeviceGroup {group!r} in tenant {obj.tenant or '(any)'} or its partner",
                )


def _script_findings(
    index: int,
    obj: Document,
    field_path: tuple[str, ...],
    script_name: str,
    state: DesiredState,
) -> Iterator[Finding]:
    script = state.visible(Script, obj.tenant, script_name)
    if script is None:
        yield Finding(
            index,
            field_path,
            f"no Script {script_name!r} in tenant {obj.tenant or '(any)'} or above",
        )
        return
    targets = targets_of(obj)
    for os_family in sorted(target_os_families(targets, obj.tenant, state) - {script.spec.os}):
        yield Finding(
            index,
            field_path,
            f"Script {script_name!r} runs on {script.spec.os} but this object targets "
            f"{os_family} devices; narrow the targets with selector.os or use a {os_family} script",
        )


def _baseline_findings(index: int, obj: ApprovalProposal, state: DesiredState) -> Iterator[Finding]:
    """Baselines an ApprovalProposal names: of its tenant or above, like a script, or of one of
    its clients (whose devices it proposes for, `core.proposals`)."""
    clients = (
        ", its clients" if obj.tenant is not None and tenant_parent(obj.tenant) is None else ""
    )
    for position, name in enumerate(obj.spec.baselines):
        found = state.visible(Baseline, obj.tenant, name) is not None or any(
            baseline.name == name and tenant_contains(obj.tenant, baseline.tenant or "")
            for baseline in state.baselines
            if baseline.tenant is not None
        )
        if not found:
            yield Finding(
                index,
                ("spec", "baselines", position),
                f"no Baseline {name!r} in tenant {obj.tenant or '(any)'}{clients} or above",
            )


def targets_of(obj: Document) -> Targets | None:
    """The `spec.targets` of kinds that apply to devices; None for the others."""
    targets = getattr(getattr(obj, "spec", None), "targets", None)
    return targets if isinstance(targets, Targets) else None


def target_os_families(
    targets: Targets | None, tenant: str | None, state: DesiredState
) -> frozenset[OsFamily]:
    """The OS families a target set is known to reach, from its selectors and its groups'.

    Only what the policy states is counted: named devices and groups without an OS selector add
    nothing, so an empty answer means "not known from the policy alone".
    """
    if targets is None:
        return frozenset()
    if targets.selector is not None and targets.selector.os is not None:
        return frozenset({targets.selector.os})
    families: set[OsFamily] = set()
    for group_name in targets.groups:
        group = state.visible(DeviceGroup, tenant, group_name)
        if group is not None and group.spec.selector is not None and group.spec.selector.os:
            families.add(group.spec.selector.os)
    return frozenset(families)


def _linux_warnings(index: int, obj: Document, state: DesiredState) -> Iterator[Finding]:
    """DESIGN.md 3.2: filters and auto approval aimed at Linux are legal but approve nothing."""
    if isinstance(obj, Whitelist) and obj.filters():
        reaches_linux = OsFamily.LINUX in target_os_families(obj.spec.targets, obj.tenant, state)
        if reaches_linux:
            yield Finding(
                index,
                ("spec", "patches"),
                f"whitelist filters approve nothing {_LINUX_NOTE}",
                warning=True,
            )
    if isinstance(obj, PatchWindow) and obj.spec.approval is ApprovalMode.AUTO:
        reaches_linux = OsFamily.LINUX in target_os_families(obj.spec.targets, obj.tenant, state)
        if reaches_linux:
            yield Finding(
                index,
                ("spec", "approval"),
                f"approval: auto approves nothing {_LINUX_NOTE}",
                warning=True,
            )


def _device_warnings(index: int, obj: Document, state: DesiredState) -> Iterator[Finding]:
    """Targeted device names the repository does not know (issue 13.10).

    The repository knows a device when a `Device` document of the object's tenant scope declares
    it or a `DeviceGroup` of that scope lists it. Enrolled devices live in the state store, not
    in git: a repository that declares no `Device` at all says nothing about names, so nothing
    is warned (`patchctl plan` also checks the enrolled fleet).
    """
    targets = targets_of(obj)
    declared = state.of_kind(Device)
    if targets is None or not declared:
        return
    known = {d.name for d in declared if tenant_contains(obj.tenant, d.tenant or "")}
    known |= {
        name
        for group in state.of_kind(DeviceGroup)
        if group.tenant is None or tenant_contains(obj.tenant, group.tenant)
        for name in group.spec.devices
    }
    named = (
        (("spec", "targets", "devices"), targets.devices),
        (("spec", "targets", "exclude", "devices"), targets.exclude.devices),
    )
    for path, names in named:
        for position, name in enumerate(names):
            if name not in known:
                yield Finding(
                    index,
                    (*path, position),
                    f"device {name!r} is not declared in inventory/devices nor listed by a "
                    f"DeviceGroup of tenant {obj.tenant or '(any)'}: a typo, or a device "
                    "enrolled but not declared (`patchctl plan` checks the enrolled fleet)",
                    warning=True,
                )


_LINUX_NOTE = "on Linux devices (Linux patches are approved only by explicit id)"


def first_errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not f.warning]
