"""Device names are host names, case-insensitive, wherever a policy names a device (13.10)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core import review as plan_review
from controller.core import targets
from controller.core.desired import DesiredState
from controller.core.observed import DeviceView, ObservedState
from controller.kinds import Device, DeviceGroup
from controller.kinds.common import OsFamily, Targets
from controller.sources import files
from controller.sources.loading import LoadResult, load_policy
from controller.testing import PolicyRepo


def load_worktree(repo: PolicyRepo) -> LoadResult:
    return load_policy(files.read_tree(repo.path), revision=None)


def messages(result: LoadResult) -> list[str]:
    return [str(p) for p in result.problems]


def approval(devices: str, *, exclude: str = "[]") -> str:
    return f"""\
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: hotfix, tenant: acme/retail}}
spec:
  patches: [USN-7123-1]
  reason: hot fix
  targets:
    devices: {devices}
    exclude: {{devices: {exclude}}}
"""


DEVICES = """\
apiVersion: patchctl/v1
kind: Device
metadata: {name: RealHost.Example.ORG, tenant: acme/retail}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: web, tenant: acme/retail}
spec: {devices: [web-01.example.org]}
"""


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(["realhost.example.org"], ("realhost.example.org",), id="fqdn"),
        pytest.param(["RealHost.Example.ORG"], ("realhost.example.org",), id="mixed-case"),
        pytest.param(["web-01"], ("web-01",), id="short-name"),
        pytest.param(["WEB-01", "db01.corp"], ("web-01", "db01.corp"), id="several"),
        pytest.param(["a" * 63 + ".example.org"], ("a" * 63 + ".example.org",), id="63-label"),
    ],
)
def test_target_device_names_are_lowercased_host_names(
    names: list[str], expected: tuple[str, ...]
) -> None:
    """Host names validate and are kept lowercase (DNS names are case-insensitive)."""
    assert expected == Targets.model_validate({"devices": names}).devices


def test_realhost_fqdn_targets_validate(policy_repo: PolicyRepo) -> None:
    """`targets.devices: [realhost.example.org]` is valid (the issue's example)."""
    policy_repo.write("policies/approvals/hotfix.yaml", approval("[realhost.example.org]"))
    result = load_worktree(policy_repo)
    assert ([], True) == (messages(result), result.state is not None)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("bad_name", id="underscore"),
        pytest.param("-web", id="leading-hyphen"),
        pytest.param("web..example.org", id="empty-label"),
        pytest.param("a" * 64, id="64-label"),
        pytest.param("web 01", id="blank"),
    ],
)
def test_names_that_are_not_host_names_are_errors_at_their_line(
    policy_repo: PolicyRepo, name: str
) -> None:
    """A name that no host can have is an error naming file, line, column and field."""
    policy_repo.write("policies/approvals/hotfix.yaml", approval(f"['{name}']"))
    result = load_worktree(policy_repo)
    assert [
        f"policies/approvals/hotfix.yaml:8:15: spec.targets.devices[0]: {name!r} is not a device "
        "name: a host name such as `web-01` or `realhost.example.org` (letters, digits and inner "
        "'-' in dot-separated labels)"
    ] == messages(result)
    assert result.state is None


def test_device_documents_take_host_names_in_any_case(policy_repo: PolicyRepo) -> None:
    """A `Device` named by a mixed-case FQDN is declared under its lowercase name."""
    policy_repo.write("inventory/devices/hosts.yaml", DEVICES)
    result = load_worktree(policy_repo)
    assert result.state is not None
    assert ["realhost.example.org"] == [d.name for d in result.state.of_kind(Device)]
    group = result.state.get(DeviceGroup, "acme/retail", "web")
    assert group is not None
    assert ("web-01.example.org",) == group.spec.devices


def test_validate_warns_about_targets_the_repository_does_not_declare(
    policy_repo: PolicyRepo,
) -> None:
    """With Devices declared, a target naming none of them (nor a group member) is a warning."""
    policy_repo.write("inventory/devices/hosts.yaml", DEVICES)
    policy_repo.write(
        "policies/approvals/hotfix.yaml",
        approval(
            "[REALHOST.example.org, web-01.example.org, realhost.exmaple.org]", exclude="[db9]"
        ),
    )
    result = load_worktree(policy_repo)
    hint = (
        "is not declared in inventory/devices nor listed by a DeviceGroup of tenant acme/retail: "
        "a typo, or a device enrolled but not declared (`patchctl plan` checks the enrolled fleet)"
    )
    assert [
        f"policies/approvals/hotfix.yaml:8:57: warning: spec.targets.devices[2]: device "
        f"'realhost.exmaple.org' {hint}",
        f"policies/approvals/hotfix.yaml:9:25: warning: spec.targets.exclude.devices[0]: device "
        f"'db9' {hint}",
    ] == messages(result)
    assert result.state is not None


def test_validate_says_nothing_about_names_without_declared_devices(
    policy_repo: PolicyRepo,
) -> None:
    """A repository that declares no Device cannot know enrolled names: no warning."""
    policy_repo.write("policies/approvals/hotfix.yaml", approval("[realhost.exmaple.org]"))
    assert [] == messages(load_worktree(policy_repo))


def enrolled(name: str) -> DeviceView:
    # The store names a device by its hostname, lowercased (`devices.device_name`).
    return DeviceView(id="d1", tenant="acme/retail", name=name.lower(), os=OsFamily.LINUX)


@pytest.mark.parametrize(
    ("written", "hostname", "expected"),
    [
        pytest.param("RealHost.Example.org", "realhost.example.org", True, id="policy-upper"),
        pytest.param("realhost.example.org", "REALHOST.EXAMPLE.ORG", True, id="host-upper"),
        pytest.param("realhost", "realhost.example.org", False, id="short-is-another-name"),
    ],
)
def test_targets_match_enrolled_names_case_insensitively(
    written: str, hostname: str, expected: bool
) -> None:
    """A policy naming a host in any case targets the device enrolled under that host name."""
    found = Targets.model_validate({"devices": [written]})
    desired = DesiredState(revision=None, objects=())
    assert expected == targets.matches(
        found, owner="acme/retail", device=enrolled(hostname), desired=desired
    )


def test_plan_warns_about_targets_no_enrolled_device_has(policy_repo: PolicyRepo) -> None:
    """`plan` with the fleet: a known host in another case is no warning, a typo is."""
    base = load_worktree(policy_repo).state
    policy_repo.write(
        "policies/approvals/hotfix.yaml",
        approval("[RealHost.Example.org, realhost.exmaple.org]"),
    )
    head = load_worktree(policy_repo).state
    assert base is not None
    assert head is not None
    observed = ObservedState(devices=(enrolled("realhost.example.org"),))
    found = plan_review.review(
        base, head, now=datetime(2026, 11, 30, tzinfo=UTC), observed=observed
    )
    assert [
        "Approval/acme/retail/hotfix: targets device 'realhost.exmaple.org', which is not "
        "enrolled, declared in inventory/ or listed by any group"
    ] == [str(w) for w in found.warnings if w.code is plan_review.WarningCode.UNKNOWN_TARGET]
