"""Approval proposals from a real planner pass: which patches, which branch, the exact document."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.observed import ObservedState
from controller.core.plan import plan
from controller.core.proposals import Proposal, approval_name, from_plan, in_schedule
from controller.kinds import ApprovalProposal
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


# --- schedules ----------------------------------------------------------------------------------

# DESIGN.md §2, verbatim (the product contract); an envelope and the baseline it names added.
DESIGN_EXAMPLE = """\
kind: ApprovalProposal                 # the controller proposes Approval PRs for waiting patches
spec: {baselines: [linux-security], groupBy: tenant, schedule: {cron: "0 7 * * MON"}, timezone: UTC,
       minimumReleaseAge: 3d, maxOpen: 5, labels: [patches], reviewers: [ops-team]}
"""
ENVELOPE = "apiVersion: patchctl/v1\nmetadata: {name: weekly, tenant: acme}\n"
LINUX_SECURITY = (
    "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: linux-security, tenant: acme}\n"
    "spec: {os: linux, targets: {groups: [linux]}}\n"
)
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # 2026-11-30 is a Monday


def proposal_of(spec: str) -> ApprovalProposal:
    """The ApprovalProposal `weekly` of a spec in flow style, loaded with the base policy."""
    text = f"{ENVELOPE}kind: ApprovalProposal\nspec: {spec}\n---\n{LINUX_SECURITY}"
    (found,) = desired(text).of_kind(ApprovalProposal)
    return found


def open_hours(obj: ApprovalProposal, day: datetime) -> list[str]:
    """The quarter hours of `day` (UTC) at which the proposal may open or update proposals."""
    quarters = (day + timedelta(minutes=15 * n) for n in range(96))
    return [f"{at:%H:%M}" for at in quarters if in_schedule(obj, now=at)]


def test_the_design_example_validates_and_means_monday_from_seven() -> None:
    """DESIGN.md's example loads unchanged: tenant grouping, its values, and a schedule open on
    Mondays from 07:00 UTC for an hour (the shorthand's default duration), closed on Tuesday."""
    (obj,) = desired(ENVELOPE + DESIGN_EXAMPLE + "---\n" + LINUX_SECURITY).of_kind(ApprovalProposal)
    spec = obj.spec
    assert (
        spec.baselines,
        spec.group_by,
        spec.minimum_release_age,
        spec.max_open,
        spec.labels,
        spec.reviewers,
    ) == (("linux-security",), "tenant", timedelta(days=3), 5, ("patches",), ("ops-team",))
    assert open_hours(obj, MONDAY) == ["07:00", "07:15", "07:30", "07:45"]
    assert open_hours(obj, MONDAY + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ('{schedule: {cron: "0 7 * * MON"}}', ["07:00", "07:15", "07:30", "07:45"]),
        (
            '{schedule: {recurrence: {cron: "0 7 * * MON"}, duration: 1h}}',
            ["07:00", "07:15", "07:30", "07:45"],
        ),
        ('{schedule: {cron: "0 7 * * MON", duration: 30m}}', ["07:00", "07:15"]),
        (
            '{schedule: {cron: "0 8 * * MON"}, timezone: Europe/Berlin}',
            ["07:00", "07:15", "07:30", "07:45"],
        ),
        (
            '{schedule: {cron: "0 8 * * MON", timezone: Europe/Berlin}, timezone: Europe/Berlin}',
            ["07:00", "07:15", "07:30", "07:45"],
        ),
        (
            '{schedule: {recurrence: {cron: "0 8 * * MON"}, timezone: Europe/Berlin, duration: 1h}}',
            ["07:00", "07:15", "07:30", "07:45"],
        ),
    ],
    ids=[
        "shorthand",
        "documented-form",
        "shorthand-with-duration",
        "spec-timezone",
        "both-timezones-agree",
        "schedule-timezone",
    ],
)
def test_both_schedule_forms_and_both_timezones_mean_the_same(
    spec: str, expected: list[str]
) -> None:
    """`cron:` is `recurrence: {cron:}` with a 1h duration; the spec's `timezone` is the
    schedule's (08:00 in Berlin is 07:00 UTC in November)."""
    assert open_hours(proposal_of(spec), MONDAY) == expected
