"""`controller.core.decisions`: the per-patch rules of DESIGN.md 3.1-3.5 on hand-built policy sets.

The policy objects come from the planner tests' YAML (`controller.testing.fleets.desired`), so each
object is what the real loader produces; patches are plain `PatchRecord` values.
"""

from __future__ import annotations

from datetime import date

import pytest

from controller.core.decisions import (
    Applicable,
    Decision,
    approval_reasons,
    baseline_requires,
    decide,
    filter_matches,
    object_ref,
    rule_selects,
)
from controller.core.patches import PatchRecord
from controller.kinds import Approval, Baseline, PatchWindow, Whitelist
from controller.kinds.baselines import Rule
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.whitelists import WhitelistEntry
from controller.testing.fleets import desired, patch

TODAY = date(2026, 11, 29)

EXTRA = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: hotfix, tenant: acme/retail}
spec: {patches: [KB-BUG, KB-BAD], targets: {groups: [windows]}, reason: hot fix, expires: 2026-11-29}
---
apiVersion: patchctl/v1
kind: Approval
metadata: {name: stale, tenant: acme}
spec: {patches: [KB-BUG], targets: {groups: [windows]}, reason: old, expires: 2026-11-28}
---
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: ids, tenant: acme}
spec: {targets: {groups: [linux]}, patches: [{id: USN-2-1}]}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: picky, tenant: acme}
spec:
  os: windows
  targets: {groups: [windows]}
  include: [KB-BUG, KB-BAD]
  exclude: [KB-BAD]
  rules: [{products: ["SQL Server*"], minRating: 7.0}]
"""

STATE = desired(EXTRA)
WIN = STATE.get(Baseline, "acme", "win")
LIN = STATE.get(Baseline, "acme", "lin")
PICKY = STATE.get(Baseline, "acme", "picky")
FILTERS = STATE.get(Whitelist, "acme", "filters")
IDS = STATE.get(Whitelist, "acme", "ids")
HOTFIX = STATE.get(Approval, "acme/retail", "hotfix")
STALE = STATE.get(Approval, "acme", "stale")
WEEKLY = STATE.get(PatchWindow, "acme", "weekly")
assert None not in (WIN, LIN, PICKY, FILTERS, IDS, HOTFIX, STALE, WEEKLY)

WINDOWS_SET = Applicable(
    OsFamily.WINDOWS,
    baselines=(WIN,),
    whitelists=(FILTERS,),
    approvals=(HOTFIX, STALE),
    windows=(WEEKLY,),
)
LINUX_SET = Applicable(
    OsFamily.LINUX, baselines=(LIN,), whitelists=(FILTERS, IDS), windows=(WEEKLY,)
)
AUTO = "auto: PatchWindow acme/weekly with Whitelist acme/filters (filter)"


def test_object_ref_names_kind_tenant_and_name() -> None:
    """`Kind tenant/name`."""
    assert "Baseline acme/win" == object_ref(WIN)


def test_object_ref_of_a_global_object() -> None:
    """An object without a tenant shows `*` in its place."""
    glob = Baseline.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "Baseline",
            "metadata": {"name": "all"},
            "spec": {"os": "linux", "targets": {"groups": ["linux"]}},
        }
    )
    assert "Baseline */all" == object_ref(glob)


# (id, applicable, patch, expected fields of the Decision)
DECIDE_CASES = [
    pytest.param(
        WINDOWS_SET,
        patch("KB-SEC"),
        Decision("KB-SEC", ("Baseline acme/win",), (), (AUTO,), superseded=False, wrong_os=False),
        id="windows-security-required-auto-approved",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("KB-NEW", age_days=1),
        Decision("KB-NEW", (), (), (), superseded=False, wrong_os=False),
        id="within-grace-and-auto-delay",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("KB-MID", age_days=5),
        Decision("KB-MID", (), (), (AUTO,), superseded=False, wrong_os=False),
        id="auto-approved-before-baseline-grace",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("KB-BAD"),
        Decision(
            "KB-BAD",
            (),
            ("Baseline acme/win",),
            ("Approval acme/retail/hotfix", AUTO),
            superseded=False,
            wrong_os=False,
        ),
        id="excluded-is-rejected-even-when-approved",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("KB-BUG", classification=Classification.BUGFIX),
        Decision(
            "KB-BUG", (), (), ("Approval acme/retail/hotfix",), superseded=False, wrong_os=False
        ),
        id="bugfix-approved-only-by-approval-expired-one-ignored",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("KB-OLD", superseded_by=("KB-SEC",)),
        Decision("KB-OLD", ("Baseline acme/win",), (), (AUTO,), superseded=True, wrong_os=False),
        id="superseded-not-installable",
    ),
    pytest.param(
        WINDOWS_SET,
        patch("USN-1-1", os=OsFamily.LINUX),
        Decision("USN-1-1", (), (), (AUTO,), superseded=False, wrong_os=True),
        id="other-os-approved-but-not-applicable",
    ),
    pytest.param(
        LINUX_SET,
        patch("USN-1-1", os=OsFamily.LINUX),
        Decision("USN-1-1", ("Baseline acme/lin",), (), (), superseded=False, wrong_os=False),
        id="linux-filters-approve-nothing",
    ),
    pytest.param(
        LINUX_SET,
        patch("USN-2-1", os=OsFamily.LINUX),
        Decision(
            "USN-2-1",
            ("Baseline acme/lin",),
            (),
            ("Whitelist acme/ids (explicit id)",),
            superseded=False,
            wrong_os=False,
        ),
        id="linux-explicit-id",
    ),
    pytest.param(
        Applicable(OsFamily.WINDOWS, baselines=(WIN,)),
        patch("KB-SEC"),
        Decision("KB-SEC", ("Baseline acme/win",), (), (), superseded=False, wrong_os=False),
        id="no-window-no-auto-approval",
    ),
]


@pytest.mark.parametrize(("applicable", "record", "expected"), DECIDE_CASES)
def test_decide(applicable: Applicable, record: PatchRecord, expected: Decision) -> None:
    """Who requires, rejects and approves a patch, and whether it is superseded or for another OS."""
    assert expected == decide(applicable, record, today=TODAY)


# required_by, excluded_by, approved_by, superseded, wrong_os -> the derived verdicts
VERDICT_CASES = [
    pytest.param(
        ("b",),
        (),
        ("a",),
        False,
        False,
        (True, True, False, False, True, False),
        id="required-approved",
    ),
    pytest.param(
        ("b",),
        (),
        (),
        False,
        False,
        (True, False, False, False, False, True),
        id="pending-approval",
    ),
    pytest.param(
        ("b",),
        ("x",),
        ("a",),
        False,
        False,
        (False, True, True, False, False, False),
        id="rejected",
    ),
    pytest.param(
        (),
        (),
        ("a",),
        False,
        False,
        (False, True, False, False, True, False),
        id="approved-not-required",
    ),
    pytest.param(
        ("b",), (), ("a",), True, False, (True, True, False, True, False, False), id="superseded"
    ),
    pytest.param(
        ("b",),
        (),
        (),
        False,
        True,
        (True, False, False, True, False, False),
        id="wrong-os-not-pending",
    ),
    pytest.param(
        (), (), (), False, False, (False, False, False, False, False, False), id="nothing"
    ),
]


@pytest.mark.parametrize(
    ("required_by", "excluded_by", "approved_by", "superseded", "wrong_os", "expected"),
    VERDICT_CASES,
)
def test_decision_verdicts(
    required_by: tuple[str, ...],
    excluded_by: tuple[str, ...],
    approved_by: tuple[str, ...],
    superseded: bool,
    wrong_os: bool,
    expected: tuple[bool, ...],
) -> None:
    """(required, approved, rejected, not_applicable, installable, pending_approval) per rule 1-6."""
    d = Decision("P", required_by, excluded_by, approved_by, superseded, wrong_os)
    actual = (
        d.required,
        d.approved,
        d.rejected,
        d.not_applicable,
        d.installable,
        d.pending_approval,
    )
    assert expected == actual


BASELINE_CASES = [
    pytest.param(PICKY, patch("KB-BUG", classification=Classification.BUGFIX), True, id="include"),
    pytest.param(PICKY, patch("KB-BAD"), False, id="exclude-beats-include"),
    pytest.param(WIN, patch("USN-9", os=OsFamily.LINUX), False, id="other-os"),
    pytest.param(WIN, patch("KB-SEC", age_days=7), True, id="grace-ends-on-day-7"),
    pytest.param(WIN, patch("KB-SEC", age_days=6), False, id="grace-day-6"),
    pytest.param(
        WIN,
        PatchRecord("KB-X", classification=Classification.SECURITY),
        True,
        id="unknown-release-date-past-grace",
    ),
    pytest.param(
        PICKY,
        PatchRecord("KB-Q", product="SQL Server 2022", rating=7.0),
        True,
        id="product-glob-and-rating",
    ),
    pytest.param(
        PICKY,
        PatchRecord("KB-Q", product="SQL Server 2022", rating=6.9),
        False,
        id="rating-too-low",
    ),
    pytest.param(PICKY, PatchRecord("KB-Q", product="SQL Server 2022"), False, id="unknown-rating"),
    pytest.param(
        PICKY, PatchRecord("KB-Q", product="Exchange", rating=9.0), False, id="product-mismatch"
    ),
]


@pytest.mark.parametrize(("baseline", "record", "expected"), BASELINE_CASES)
def test_baseline_requires(baseline: Baseline, record: PatchRecord, expected: bool) -> None:
    """Rule 1: exclude, include, OS, then rules with their grace period."""
    assert expected == baseline_requires(baseline, record, today=TODAY)


def test_rule_selects_severity() -> None:
    """A rule listing severities matches only those."""
    rule = Rule(severities=(Severity.CRITICAL,))
    actual = [
        rule_selects(rule, classification=Classification.OTHER, severity=s, product="", rating=None)
        for s in (Severity.CRITICAL, Severity.IMPORTANT)
    ]
    assert [True, False] == actual


def test_approval_reasons_linux_ignores_auto_windows() -> None:
    """Auto approval is Windows only: a Linux set with an auto window gets only explicit ids."""
    actual = approval_reasons(LINUX_SET, patch("USN-2-1", os=OsFamily.LINUX), today=TODAY)
    assert ("Whitelist acme/ids (explicit id)",) == actual


def test_approval_valid_on_its_expiry_day() -> None:
    """An approval expires the day after its `expires` date."""
    record = patch("KB-BUG", classification=Classification.BUGFIX)
    actual = (
        approval_reasons(WINDOWS_SET, record, today=date(2026, 11, 29)),
        approval_reasons(WINDOWS_SET, record, today=date(2026, 11, 30)),
    )
    assert (("Approval acme/retail/hotfix",), ()) == actual


FILTER_CASES = [
    pytest.param(
        WhitelistEntry(vendors=("Microsoft",)),
        PatchRecord("K", vendor="microsoft"),
        True,
        id="vendor-case-insensitive",
    ),
    pytest.param(
        WhitelistEntry(vendors=("adobe",)),
        PatchRecord("K", vendor="microsoft"),
        False,
        id="vendor-mismatch",
    ),
    pytest.param(
        WhitelistEntry(products=("Windows*",)),
        PatchRecord("K", product="Windows Server 2022"),
        True,
        id="product-glob",
    ),
    pytest.param(
        WhitelistEntry(products=("windows*",)),
        PatchRecord("K", product="Windows Server 2022"),
        False,
        id="product-glob-case-sensitive",
    ),
    pytest.param(
        WhitelistEntry(severities=(Severity.CRITICAL,)),
        PatchRecord("K", severity=Severity.LOW),
        False,
        id="severity-mismatch",
    ),
]


@pytest.mark.parametrize(("entry", "record", "expected"), FILTER_CASES)
def test_filter_matches(entry: WhitelistEntry, record: PatchRecord, expected: bool) -> None:
    """Every condition a whitelist filter sets must hold."""
    assert expected == filter_matches(entry, record)
