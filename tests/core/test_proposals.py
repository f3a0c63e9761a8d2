"""Approval proposals from a real planner pass: which patches, which branch, the exact document."""

from __future__ import annotations

from dataclasses import replace

from controller.core.observed import ObservedState
from controller.core.plan import plan
from controller.core.proposals import Proposal, approval_name, from_plan
from controller.kinds.common import OsFamily
from controller.testing.fleets import CATALOGUE, SUNDAY_OPEN, desired, device, observed, patch, scan

LINUX = OsFamily.LINUX

PROPOSE = """\
apiVersion: patchctl/v1
kind: ApprovalProposal
metadata: {name: linux, tenant: acme}
spec: {baselines: [lin], minimumReleaseAge: SOAK, maxOpen: MAXOPEN, labels: [patches]}
"""


def proposals(
    extra: str, observed_state: ObservedState, *, soak: str = "3d", max_open: int = 5, **kw: object
) -> tuple[Proposal, ...]:
    text = PROPOSE.replace("SOAK", soak).replace("MAXOPEN", str(max_open)) + extra
    state = desired(text)
    return from_plan(state, observed_state, plan(state, observed_state, now=SUNDAY_OPEN), **kw)  # type: ignore[arg-type]


def test_one_proposal_per_tenant_and_baseline_with_the_exact_document() -> None:
    fleet = observed(
        (device("l1", os=LINUX), scan("USN-2-1", "USN-1-1")),
        (device("l2", os=LINUX), scan("USN-1-1")),
        (device("l3", os=LINUX, tenant="acme"), scan("USN-1-1")),
        (device("w1"), scan("KB-BUG")),  # the windows baseline is not proposed
    )
    found = proposals("", fleet)
    assert [(p.branch, p.tenant, p.patches) for p in found] == [
        ("patchctl/proposals/acme/lin", "acme", ("USN-1-1",)),
        ("patchctl/proposals/acme/retail/lin", "acme/retail", ("USN-1-1", "USN-2-1")),
    ]
    retail = found[1]
    assert retail.path == "policies/approvals/proposed/acme/retail/lin.yaml"
    assert retail.labels == ("patches",)
    assert retail.title == "Approve 2 patches for acme/retail/lin"
    assert retail.document == (
        "# Proposed by patchctl. Merging this file approves the patches below.\n"
        "apiVersion: patchctl/v1\n"
        "kind: Approval\n"
        "metadata:\n"
        "  name: proposed-lin\n"
        '  tenant: "acme/retail"\n'
        "spec:\n"
        '  patches: ["USN-1-1", "USN-2-1"]\n'
        '  targets: {"groups": ["linux"]}\n'
        '  reason: "Proposed by patchctl (ApprovalProposal acme/linux): required by Baseline '
        'acme/lin, waiting for approval, released at least 3d ago"\n'
    )


def test_the_proposed_document_loads_and_approves_the_patches() -> None:
    fleet = observed((device("l1", os=LINUX), scan("USN-2-1", "USN-1-1")))
    (proposal,) = proposals("", fleet)
    # `desired` loads through the real loader and fails on any problem in the document.
    merged = desired(
        PROPOSE.replace("SOAK", "3d").replace("MAXOPEN", "5") + "---\n" + proposal.document
    )
    after = plan(merged, fleet, now=SUNDAY_OPEN)
    # Merged, nothing waits any more: no proposal is left and the patches are installable.
    assert from_plan(merged, fleet, after) == ()
    assert {d.device_id: sorted(d.installable) for d in after.devices} == {
        "id-l1": ["USN-1-1", "USN-2-1"]
    }


def test_soak_holds_back_young_patches_and_unknown_release_dates() -> None:
    young = patch("USN-9-1", os=LINUX, age_days=2)
    undated = replace(patch("USN-8-1", os=LINUX), released=None)
    fleet = observed((device("l1", os=LINUX), scan("USN-9-1", "USN-8-1", "USN-1-1")))
    fleet = ObservedState(
        devices=fleet.devices,
        scans=fleet.scans,
        catalogue={**CATALOGUE, young.id: young, undated.id: undated},
    )
    assert [p.patches for p in proposals("", fleet, soak="3d")] == [("USN-1-1",)]
    # 2 days and 1.5 hours after its release day began (SUNDAY_OPEN is 01:30 UTC).
    assert [p.patches for p in proposals("", fleet, soak="2d1h")] == [("USN-1-1", "USN-9-1")]
    assert [p.patches for p in proposals("", fleet, soak="2d2h")] == [("USN-1-1",)]


def test_max_open_keeps_open_branches_first() -> None:
    fleet = observed(
        (device("l1", os=LINUX), scan("USN-1-1")),
        (device("l2", os=LINUX, tenant="acme"), scan("USN-1-1")),
    )
    assert [p.branch for p in proposals("", fleet, max_open=1)] == ["patchctl/proposals/acme/lin"]
    kept = proposals("", fleet, max_open=1, open_branches=["patchctl/proposals/acme/retail/lin"])
    assert [p.branch for p in kept] == ["patchctl/proposals/acme/retail/lin"]


def test_a_long_baseline_name_stays_a_valid_policy_name() -> None:
    name = approval_name("b" * 63)
    assert len(name) == 63
    assert name.startswith("proposed-bbbb")
    assert approval_name("lin") == "proposed-lin"
