"""`controller.core.references`: cross-reference findings over a policy tree (dangling groups and
scripts, tenants, duplicates, Linux and device-name warnings), each naming object and field."""

from __future__ import annotations

import pytest

from controller.core.desired import DesiredState
from controller.core.references import (
    Finding,
    detect_findings,
    first_errors,
    target_os_families,
    targets_of,
)
from controller.kinds import Document
from controller.kinds.common import OsFamily
from controller.sources.loading import SourceFile, parse_reference

HEADER = "apiVersion: patchctl/v1\n"

TENANTS = """\
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail, bank]}
---
kind: DeviceGroup
metadata: {name: linux, tenant: acme}
spec: {selector: {os: linux}}
---
kind: DeviceGroup
metadata: {name: windows, tenant: acme}
spec: {selector: {os: windows}}
---
kind: DeviceGroup
metadata: {name: tills, tenant: acme/retail}
spec: {devices: [till-01]}
---
kind: Script
metadata: {name: stop-app, tenant: acme}
spec: {os: windows, shell: powershell, content: "Stop-Service app"}
"""
FIXED = TENANTS.count("kind:")  # objects before the one under test


def documents(*texts: str) -> tuple[Document, ...]:
    """Validated objects of YAML documents (each given without `apiVersion`), in order."""
    docs = [doc for t in texts for doc in t.split("---\n")]
    text = "---\n".join(HEADER + doc for doc in docs)
    parsed = parse_reference(SourceFile("policies/all.yaml", text.encode()))
    assert () == parsed.problems
    return parsed.objects


def findings(text: str) -> list[Finding]:
    """The findings of the fixed tree plus `text`."""
    return detect_findings(documents(TENANTS, text))


def test_fixed_tree_is_clean() -> None:
    """The shared objects alone have no finding (so each case below is about its own object)."""
    assert [] == detect_findings(documents(TENANTS))


BASELINE = "kind: Baseline\nmetadata: {{name: b, tenant: {tenant}}}\nspec: {{os: windows, targets: {targets}}}\n"

FINDING_CASES = [
    pytest.param(
        BASELINE.format(tenant="acme", targets="{groups: [windows, nope]}"),
        [
            Finding(
                FIXED,
                ("spec", "targets", "groups", 1),
                "no DeviceGroup 'nope' in tenant acme or its partner",
            )
        ],
        id="dangling-group",
    ),
    pytest.param(
        BASELINE.format(tenant="acme", targets="{groups: [windows], exclude: {groups: [gone]}}"),
        [
            Finding(
                FIXED,
                ("spec", "targets", "exclude", "groups", 0),
                "no DeviceGroup 'gone' in tenant acme or its partner",
            )
        ],
        id="dangling-exclude-group",
    ),
    pytest.param(
        BASELINE.format(tenant="acme/retail", targets="{groups: [windows, tills]}"),
        [],
        id="client-sees-partner-and-own-groups",
    ),
    pytest.param(
        BASELINE.format(tenant="acme/bank", targets="{groups: [tills]}"),
        [
            Finding(
                FIXED,
                ("spec", "targets", "groups", 0),
                "no DeviceGroup 'tills' in tenant acme/bank or its partner",
            )
        ],
        id="client-cannot-see-sibling-client-group",
    ),
    pytest.param(
        BASELINE.format(tenant="acme", targets="{groups: [tills]}"),
        [
            Finding(
                FIXED,
                ("spec", "targets", "groups", 0),
                "no DeviceGroup 'tills' in tenant acme or its partner",
            )
        ],
        id="partner-cannot-see-client-group",
    ),
    pytest.param(
        BASELINE.format(tenant="initech", targets="{groups: [nope]}"),
        [
            Finding(
                FIXED,
                ("metadata", "tenant"),
                "tenant 'initech' is not declared by any Tenant (known: acme, acme/bank, acme/retail)",
            )
        ],
        id="unknown-tenant-one-error-only",
    ),
    pytest.param(
        BASELINE.format(tenant="acme/hq", targets="{groups: [windows]}"),
        [
            Finding(
                FIXED,
                ("metadata", "tenant"),
                "client 'hq' is not listed in spec.clients of Tenant 'acme'",
            )
        ],
        id="unknown-client",
    ),
    pytest.param(
        "kind: Tenant\nmetadata: {name: other, tenant: acme}\nspec: {}\n",
        [Finding(FIXED, ("metadata", "tenant"), "a Tenant is a partner: omit metadata.tenant")],
        id="tenant-with-tenant",
    ),
    pytest.param(
        "kind: ScriptJob\nmetadata: {name: j, tenant: acme}\n"
        "spec: {script: missing, targets: {groups: [windows]}, recurrence: {cron: '0 3 * * *'}}\n",
        [Finding(FIXED, ("spec", "script"), "no Script 'missing' in tenant acme or above")],
        id="dangling-script",
    ),
    pytest.param(
        "kind: ScriptJob\nmetadata: {name: j, tenant: acme/retail}\n"
        "spec: {script: stop-app, targets: {groups: [windows]}, recurrence: {cron: '0 3 * * *'}}\n",
        [],
        id="script-from-partner",
    ),
    pytest.param(
        "kind: ScriptJob\nmetadata: {name: j, tenant: acme}\n"
        "spec: {script: stop-app, targets: {groups: [windows, linux]}, recurrence: {cron: '0 3 * * *'}}\n",
        [
            Finding(
                FIXED,
                ("spec", "script"),
                "Script 'stop-app' runs on windows but this object targets linux devices; "
                "narrow the targets with selector.os or use a linux script",
            )
        ],
        id="script-for-other-os",
    ),
    pytest.param(
        "kind: PatchWindow\nmetadata: {name: w, tenant: acme}\n"
        "spec: {targets: {groups: [windows]}, recurrence: {cron: '0 2 * * SUN'}, timezone: UTC,"
        " duration: 2h, preScript: stop-app, postScript: start-app}\n",
        [Finding(FIXED, ("spec", "postScript"), "no Script 'start-app' in tenant acme or above")],
        id="window-post-script-dangling",
    ),
]


@pytest.mark.parametrize(("text", "expected"), FINDING_CASES)
def test_detect_findings(text: str, expected: list[Finding]) -> None:
    """Each error names the object's index, the field path and what is wrong."""
    assert expected == findings(text)


BASELINES = """\
kind: Baseline
metadata: {name: partner-web, tenant: acme}
spec: {os: linux, targets: {groups: [linux]}}
---
kind: Baseline
metadata: {name: retail-tills, tenant: acme/retail}
spec: {os: windows, targets: {groups: [tills]}}
---
kind: Baseline
metadata: {name: everyone}
spec: {os: linux, targets: {selector: {os: linux}}}
---
"""
PROPOSAL = "kind: ApprovalProposal\nmetadata: {{name: p{tenant}}}\nspec: {{baselines: [{names}]}}\n"
PROPOSER = FIXED + BASELINES.count("kind:")  # the index of the proposal


@pytest.mark.parametrize(
    ("tenant", "names", "expected"),
    [
        ("acme", "partner-web, everyone, retail-tills", []),
        ("acme/retail", "partner-web, everyone, retail-tills", []),
        ("", "partner-web, everyone, retail-tills", []),
        (
            "acme",
            "partner-web, nosuch",
            [(1, "no Baseline 'nosuch' in tenant acme, its clients or above")],
        ),
        (
            "acme/bank",
            "retail-tills",
            [(0, "no Baseline 'retail-tills' in tenant acme/bank or above")],
        ),
        ("", "nosuch", [(0, "no Baseline 'nosuch' in tenant (any) or above")]),
    ],
    ids=[
        "partner-sees-own-global-and-clients",
        "client-sees-partner-global-and-own",
        "global-sees-any",
        "dangling",
        "client-cannot-see-sibling-client",
        "global-dangling",
    ],
)
def test_proposal_baselines_must_exist(
    tenant: str, names: str, expected: list[tuple[int, str]]
) -> None:
    """An ApprovalProposal names baselines it can propose for: of its tenant, its clients (whose
    devices it covers), its partner or every tenant; any other name is an error at the item."""
    scope = f", tenant: {tenant}" if tenant else ""
    actual = findings(BASELINES + PROPOSAL.format(tenant=scope, names=names))
    assert [
        Finding(PROPOSER, ("spec", "baselines", position), message)
        for position, message in expected
    ] == actual


def test_duplicate_names_the_first() -> None:
    """A second object of the same kind, tenant and name is an error related to the first."""
    dup = "kind: DeviceGroup\nmetadata: {name: linux, tenant: acme}\nspec: {devices: [x]}\n"
    expected = [
        Finding(
            FIXED, ("metadata", "name"), "duplicate DeviceGroup 'linux' in tenant acme", related=1
        )
    ]
    assert expected == findings(dup)


def test_same_name_in_other_tenant_is_no_duplicate() -> None:
    """Names are unique per (kind, tenant)."""
    other = (
        "kind: DeviceGroup\nmetadata: {name: linux, tenant: acme/retail}\nspec: {devices: [x]}\n"
    )
    assert [] == findings(other)


LINUX_WARNING_CASES = [
    pytest.param(
        "kind: Whitelist\nmetadata: {name: f, tenant: acme}\n"
        "spec: {targets: {groups: [linux]}, patches: [{classifications: [security]}]}\n",
        [
            Finding(
                FIXED,
                ("spec", "patches"),
                "whitelist filters approve nothing on Linux devices "
                "(Linux patches are approved only by explicit id)",
                warning=True,
            )
        ],
        id="whitelist-filter-on-linux",
    ),
    pytest.param(
        "kind: Whitelist\nmetadata: {name: f, tenant: acme}\n"
        "spec: {targets: {groups: [linux]}, patches: [{id: USN-1-1}]}\n",
        [],
        id="whitelist-id-on-linux",
    ),
    pytest.param(
        "kind: Whitelist\nmetadata: {name: f, tenant: acme}\n"
        "spec: {targets: {groups: [windows]}, patches: [{classifications: [security]}]}\n",
        [],
        id="whitelist-filter-on-windows",
    ),
    pytest.param(
        "kind: PatchWindow\nmetadata: {name: w, tenant: acme}\n"
        "spec: {targets: {selector: {os: linux}}, recurrence: {cron: '0 2 * * SUN'}, timezone: UTC,"
        " duration: 2h, approval: auto}\n",
        [
            Finding(
                FIXED,
                ("spec", "approval"),
                "approval: auto approves nothing on Linux devices "
                "(Linux patches are approved only by explicit id)",
                warning=True,
            )
        ],
        id="auto-window-on-linux",
    ),
]


@pytest.mark.parametrize(("text", "expected"), LINUX_WARNING_CASES)
def test_linux_warnings(text: str, expected: list[Finding]) -> None:
    """DESIGN.md 3.2: filters and auto approval aimed at Linux are warned, not refused."""
    assert expected == findings(text)


DEVICE = "kind: Device\nmetadata: {name: web-01, tenant: acme/retail}\nspec: {}\n"
APPROVAL = (
    "kind: Approval\nmetadata: {{name: a, tenant: {tenant}}}\n"
    "spec: {{patches: [KB1], reason: r, targets: {{devices: [{devices}], exclude: {{devices: [{excluded}]}}}}}}\n"
)


def test_device_names_not_warned_without_device_documents() -> None:
    """A tree that declares no Device says nothing about device names."""
    assert [] == findings(APPROVAL.format(tenant="acme", devices="web-99", excluded="web-98"))


def test_unknown_device_names_warned() -> None:
    """With Devices declared, a name neither declared nor listed by a group of the scope is warned."""
    objects = documents(
        TENANTS,
        DEVICE,
        APPROVAL.format(tenant="acme", devices="web-01, till-01, web-99", excluded="web-98"),
    )
    message = (
        "device {!r} is not declared in inventory/devices nor listed by a DeviceGroup of tenant "
        "acme: a typo, or a device enrolled but not declared (`patchctl plan` checks the enrolled fleet)"
    )
    expected = [
        Finding(
            FIXED + 1, ("spec", "targets", "devices", 2), message.format("web-99"), warning=True
        ),
        Finding(
            FIXED + 1,
            ("spec", "targets", "exclude", "devices", 0),
            message.format("web-98"),
            warning=True,
        ),
    ]
    assert expected == detect_findings(objects)


def test_device_of_other_client_is_unknown() -> None:
    """A client's object does not know a sibling client's declared device."""
    objects = documents(
        TENANTS, DEVICE, APPROVAL.format(tenant="acme/bank", devices="web-01", excluded="till-01")
    )
    actual = [(f.field_path, f.warning) for f in detect_findings(objects)]
    assert [
        (("spec", "targets", "devices", 0), True),
        (("spec", "targets", "exclude", "devices", 0), True),
    ] == actual


def test_first_errors_drops_warnings() -> None:
    """Only errors block a revision."""
    error = Finding(0, ("a",), "e")
    warning = Finding(0, ("b",), "w", warning=True)
    assert [error] == first_errors([warning, error])


def test_findings_sorted_errors_first_per_object() -> None:
    """Findings come in object order, an object's errors before its warnings."""
    bad_window = (
        "kind: PatchWindow\nmetadata: {name: w, tenant: acme}\n"
        "spec: {targets: {groups: [linux, nope]}, recurrence: {cron: '0 2 * * SUN'}, timezone: UTC,"
        " duration: 2h, approval: auto}\n"
    )
    actual = [(f.index, f.warning) for f in findings(bad_window)]
    assert [(FIXED, False), (FIXED, True)] == actual


def test_targets_of() -> None:
    """Kinds with `spec.targets` give them; others (Tenant, Script) give None."""
    objects = documents(TENANTS, BASELINE.format(tenant="acme", targets="{groups: [windows]}"))
    assert [None, None, None, None, None, ("windows",)] == [
        t.groups if (t := targets_of(o)) is not None else None for o in objects
    ]


OS_CASES = [
    pytest.param("{groups: [windows, linux]}", {OsFamily.WINDOWS, OsFamily.LINUX}, id="groups"),
    pytest.param(
        "{groups: [linux], selector: {os: windows}}", {OsFamily.WINDOWS}, id="selector-os-wins"
    ),
    pytest.param("{groups: [tills]}", set(), id="group-without-os"),
    pytest.param("{devices: [till-01]}", set(), id="named-devices-unknown"),
]


@pytest.mark.parametrize(("targets", "expected"), OS_CASES)
def test_target_os_families(targets: str, expected: set[OsFamily]) -> None:
    """Only the OS families the policy states (selectors, groups' selectors) are counted."""
    objects = documents(TENANTS, BASELINE.format(tenant="acme/retail", targets=targets))
    state = DesiredState(revision=None, objects=objects)
    assert frozenset(expected) == target_os_families(targets_of(objects[-1]), "acme/retail", state)
