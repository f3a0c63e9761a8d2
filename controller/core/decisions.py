"""Per-patch decisions (DESIGN.md 3.1-3.5): required, approved, rejected, installable.

Purely computational. A device's decisions depend only on the policy objects that target it, its
OS family, the patch record and the day, so the planner computes them once per distinct policy set
and patch, and shares them between every device with that set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from fnmatch import fnmatchcase

from controller.core.patches import PatchRecord
from controller.kinds import Approval, Baseline, Document, PatchWindow, ScanSchedule, Whitelist
from controller.kinds.baselines import Rule
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.whitelists import WhitelistEntry
from controller.kinds.windows import ApprovalMode

AUTO_APPROVABLE = frozenset({Classification.SECURITY, Classification.CRITICAL})


def object_ref(obj: Document) -> str:
    """`Kind tenant/name` as shown in explanations and job payloads."""
    return f"{obj.KIND} {obj.tenant or '*'}/{obj.name}"


@dataclass(frozen=True, slots=True)
class Applicable:
    """The policy objects that target one device (equal for devices with equal facts)."""

    os: OsFamily | None
    baselines: tuple[Baseline, ...] = ()
    whitelists: tuple[Whitelist, ...] = ()
    approvals: tuple[Approval, ...] = ()
    windows: tuple[PatchWindow, ...] = ()
    scan_schedules: tuple[ScanSchedule, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything the rules say about one patch for one policy set, with the reasons.

    The verdicts are computed once at construction: the planner reads them for every device.
    """

    patch_id: str
    required_by: tuple[str, ...]  # baseline names (object refs) that require the patch
    excluded_by: tuple[str, ...]  # baselines that exclude (reject) it
    approved_by: tuple[str, ...]  # human-readable reasons it is approved
    superseded: bool
    wrong_os: bool
    required: bool = field(init=False)
    approved: bool = field(init=False)
    rejected: bool = field(init=False)
    not_applicable: bool = field(init=False)
    installable: bool = field(init=False)  # rule 4: approved, not rejected, not superseded
    pending_approval: bool = field(init=False)  # rule 5, for a missing patch

    def __post_init__(self) -> None:
        verdicts = {
            "required": bool(self.required_by) and not self.excluded_by,
            "approved": bool(self.approved_by),
            "rejected": bool(self.excluded_by),
            "not_applicable": self.superseded or self.wrong_os,
        }
        verdicts["installable"] = (
            verdicts["approved"] and not verdicts["rejected"] and not verdicts["not_applicable"]
        )
        verdicts["pending_approval"] = (
            verdicts["required"] and not verdicts["approved"] and not verdicts["not_applicable"]
        )
        for name, value in verdicts.items():
            object.__setattr__(self, name, value)


def decide(applicable: Applicable, patch: PatchRecord, *, today: date) -> Decision:
    """The rules of DESIGN.md section 3 for one patch against one policy set."""
    return Decision(
        patch_id=patch.id,
        required_by=tuple(
            object_ref(b) for b in applicable.baselines if baseline_requires(b, patch, today=today)
        ),
        excluded_by=tuple(
            object_ref(b) for b in applicable.baselines if patch.id in b.spec.exclude
        ),
        approved_by=approval_reasons(applicable, patch, today=today),
        superseded=bool(patch.superseded_by),
        wrong_os=patch.os is not None and applicable.os is not None and patch.os != applicable.os,
    )


def baseline_requires(baseline: Baseline, patch: PatchRecord, *, today: date) -> bool:
    """Rule 1 for one baseline: included, or matching a rule once its grace period passed."""
    if patch.id in baseline.spec.exclude:
        return False
    if patch.id in baseline.spec.include:
        return True
    if patch.os is not None and patch.os != baseline.spec.os:
        return False
    return any(rule_matches(rule, patch, today=today) for rule in baseline.spec.rules)


def rule_matches(rule: Rule, patch: PatchRecord, *, today: date) -> bool:
    """Every condition the rule sets holds. An unknown rating never meets `minRating`; an
    unknown release date counts as past every grace period (the agent saw it published)."""
    return rule_selects(
        rule,
        classification=patch.classification,
        severity=patch.severity,
        product=patch.product,
        rating=patch.rating,
    ) and released_before(patch, days=rule.released_after_days, today=today)


def rule_selects(
    rule: Rule,
    *,
    classification: Classification,
    severity: Severity,
    product: str,
    rating: float | None,
) -> bool:
    """The rule's conditions on what a patch is (all but its grace period) hold; shared by
    `rule_matches` and the check for rules that can match nothing (`review`)."""
    if rule.classifications and classification not in rule.classifications:
        return False
    if rule.severities and severity not in rule.severities:
        return False
    if rule.products and not _glob_any(rule.products, product):
        return False
    return rule.min_rating is None or (rating is not None and rating >= rule.min_rating)


def released_before(patch: PatchRecord, *, days: int, today: date) -> bool:
    return patch.released is None or patch.released <= today - timedelta(days=days)


def approval_reasons(applicable: Applicable, patch: PatchRecord, *, today: date) -> tuple[str, ...]:
    """Rule 2: the approvals, whitelist ids and (Windows only) auto approvals that cover `patch`."""
    reasons = [
        object_ref(a)
        for a in applicable.approvals
        if patch.id in a.spec.patches and not a.is_expired(today=today)
    ]
    reasons.extend(
        f"{object_ref(w)} (explicit id)"
        for w in applicable.whitelists
        if patch.id in w.explicit_ids()
    )
    if applicable.os is OsFamily.WINDOWS:
        reasons.extend(_auto_approval_reasons(applicable, patch, today=today))
    return tuple(reasons)


def _auto_approval_reasons(applicable: Applicable, patch: PatchRecord, *, today: date) -> list[str]:
    if patch.classification not in AUTO_APPROVABLE:
        return []
    filters = [
        w for w in applicable.whitelists if any(filter_matches(f, patch) for f in w.filters())
    ]
    if not filters:
        return []
    return [
        f"auto: {object_ref(window)} with {object_ref(filters[0])} (filter)"
        for window in applicable.windows
        if window.spec.approval is ApprovalMode.AUTO
        and released_before(patch, days=window.spec.auto_approve.released_after_days, today=today)
    ]


def filter_matches(entry: WhitelistEntry, patch: PatchRecord) -> bool:
    if entry.classifications and patch.classification not in entry.classifications:
        return False
    if entry.severities and patch.severity not in entry.severities:
        return False
    if entry.vendors and patch.vendor.lower() not in {v.lower() for v in entry.vendors}:
        return False
    return not entry.products or _glob_any(entry.products, patch.product)


def _glob_any(patterns: tuple[str, ...], text: str) -> bool:
    return any(fnmatchcase(text, pattern) for pattern in patterns)
