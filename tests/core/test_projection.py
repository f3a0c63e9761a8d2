"""`plan --base --head`: what merging a change would do to the current fleet."""

from __future__ import annotations

from controller.core.changes import AuditEventType
from controller.core.projection import project
from controller.kinds.common import OsFamily
from controller.testing.fleets import SUNDAY_OPEN, desired, device, observed, scan

APPROVE = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: hotfix, tenant: acme/retail}
spec: {patches: [PATCHES], targets: {groups: [linux]}, reason: PR 12}
"""


def test_an_approval_grants_patches_to_the_targeted_devices() -> None:
    """A new approval makes its patches installable on the Linux devices that miss them."""
    fleet = observed(
        (device("l1", os=OsFamily.LINUX), scan("USN-1-1")),
        (device("l2", os=OsFamily.LINUX), scan("USN-2-1")),
        (device("w1"), scan("KB-SEC")),
    )
    result = project(
        desired(), desired(APPROVE.replace("PATCHES", "USN-1-1")), fleet, now=SUNDAY_OPEN
    )
    assert [AuditEventType.APPROVAL_GRANTED] == [c.event for c in result.changes]
    assert [("l1", ("USN-1-1",), ())] == [(d.name, d.granted, d.revoked) for d in result.devices]
    assert "acme/weekly" == result.devices[0].next_window
    assert (2, 1) == (result.pending_before, result.pending_after)
    assert {"non-compliant": 2} == result.compliance_before["Baseline acme/lin"]
    assert {"compliant": 1, "non-compliant": 1} == result.compliance_after["Baseline acme/lin"]


def test_revoking_an_approval_is_shown_as_revoked() -> None:
    """Removing an approval lists the patches devices lose."""
    fleet = observed((device("l1", os=OsFamily.LINUX), scan("USN-1-1")))
    base = desired(APPROVE.replace("PATCHES", "USN-1-1"))
    result = project(base, desired(), fleet, now=SUNDAY_OPEN)
    assert [("l1", (), ("USN-1-1",))] == [(d.name, d.granted, d.revoked) for d in result.devices]
    assert [AuditEventType.APPROVAL_REVOKED] == [c.event for c in result.changes]


def test_an_approval_nobody_needs_is_a_warning() -> None:
    """Approving a patch no targeted device is missing warns that it approves nothing."""
    fleet = observed((device("l1", os=OsFamily.LINUX), scan("USN-1-1")))
    result = project(
        desired(), desired(APPROVE.replace("PATCHES", "USN-9-9")), fleet, now=SUNDAY_OPEN
    )
    assert (
        "Approval/acme/retail/hotfix: approves USN-9-9, which no targeted device is missing (1 device(s) targeted)",
    ) == result.warnings


def test_no_change_is_no_change() -> None:
    """The same policy on both sides changes nothing."""
    fleet = observed((device("l1", os=OsFamily.LINUX), scan("USN-1-1")))
    result = project(desired(), desired(), fleet, now=SUNDAY_OPEN)
    assert (False, (), ()) == (result.has_changes, result.devices, result.warnings)


def test_a_gateway_gains_nothing_and_stays_non_compliant() -> None:
    """A gateway is never patched (DESIGN.md §1): an approval that reaches it grants it nothing
    to install, names no window for it, and leaves it non-compliant after the next window."""
    fleet = observed(
        (device("l1", os=OsFamily.LINUX), scan("USN-1-1")),
        (device("gw", os=OsFamily.LINUX, role="gateway"), scan("USN-1-1")),
    )
    result = project(
        desired(), desired(APPROVE.replace("PATCHES", "USN-1-1")), fleet, now=SUNDAY_OPEN
    )
    assert [("l1", ("USN-1-1",))] == [(d.name, d.granted) for d in result.devices]
    assert {"compliant": 1, "non-compliant": 1} == result.compliance_after["Baseline acme/lin"]
