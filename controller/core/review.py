"""A pull request's policy changes in the words a reviewer checks, and what to warn about.

Purely computational, no side effects: two revisions of the policy, `now`, and optionally a
patch catalogue snapshot and the observed fleet go in; one `ObjectReview` per changed object and
a list of `PlanWarning`s come out. Without a fleet or a catalogue the review still stands: it
says what the files change (patches approved, revoked and rejected, targets, reason, ticket,
expiry, window occurrences, baselines tightened or loosened, script diffs); the catalogue adds
titles and severities and catches unknown patch ids; the fleet adds devices.

Wording rules (docs/ci.md): expiry is counted in whole UTC days from `now` (an approval holds
through its `expires` day, `controller.kinds.approvals`); window occurrences are printed on the
window's own wall clock; a Baseline is *tightened* when the change can only make more patches
required (a new rule or include, a wider rule, a shorter grace period or stale-scan limit,
`excludeAction: block`), *loosened* when it can only make fewer required, and both otherwise.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from controller.core import changes, decisions, references, targets, windows
from controller.core.changes import ChangeAction, ObjectChange
from controller.core.desired import DesiredState
from controller.core.observed import ObservedState
from controller.core.patches import PatchRecord
from controller.kinds import (
    Approval,
    Baseline,
    Device,
    DeviceGroup,
    Document,
    ObjectKey,
    PatchWindow,
    Script,
    Whitelist,
)
from controller.kinds.baselines import ExcludeAction, Rule
from controller.kinds.common import Classification, OsFamily, Severity, Targets, format_duration
from controller.kinds.windows import ApprovalMode

OCCURRENCES_SHOWN = 3
DIFF_CONTEXT = 3
OCCURRENCE_HORIZON = timedelta(days=400)  # a yearly window still shows its next opening


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """What a plan needs to know about a patch id: the catalogue snapshot's row."""

    id: str
    title: str = ""
    severity: str = ""  # "" when the feed gives none
    os: str | None = None
    # What baseline rules select on; classification None: a snapshot without it (written
    # before it was served), whose entries cannot say whether a rule matches them.
    classification: str | None = None
    product: str = ""
    rating: float | None = None


Catalogue = Mapping[str, CatalogueEntry]


def catalogue_from_records(records: Iterable[PatchRecord]) -> dict[str, CatalogueEntry]:
    """The snapshot of a store's catalogue (`controller.core.patches.PatchRecord`s)."""
    return {
        record.id: CatalogueEntry(
            id=record.id,
            title=record.title,
            severity="" if record.severity.value == "unspecified" else record.severity.value,
            os=record.os.value if record.os is not None else None,
            classification=record.classification.value,
            product=record.product,
            rating=record.rating,
        )
        for record in records
    }


@dataclass(frozen=True, slots=True)
class PatchRef:
    """A patch id as the review shows it; `known` is None when no catalogue was at hand."""

    id: str
    title: str = ""
    severity: str = ""
    known: bool | None = None

    def words(self) -> str:
        """`USN-7123-1 (high): OpenSSL vulnerabilities`, or the bare id."""
        severity = f" ({self.severity})" if self.severity else ""
        title = f": {self.title}" if self.title else ""
        unknown = " (not in the catalogue)" if self.known is False else ""
        return f"{self.id}{severity}{title}{unknown}"


class WarningCode(StrEnum):
    """Why a plan warns; stable, for programs reading `--format json`."""

    UNKNOWN_PATCH = "unknown-patch"
    APPROVES_NOTHING = "approves-nothing"
    EXPIRED_ON_ARRIVAL = "expired-on-arrival"
    LINUX_AUTO_APPROVAL = "linux-auto-approval"
    UNKNOWN_TARGET = "unknown-target"
    RULE_MATCHES_NOTHING = "rule-matches-nothing"


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """Something a reviewer should look at before merging; `object` is the changed object."""

    object: ObjectKey
    code: WarningCode
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


@dataclass(frozen=True, slots=True)
class ObjectReview:
    """One changed object, in words: the structured lists and the sentences of `details`."""

    change: ObjectChange
    approved: tuple[PatchRef, ...] = ()
    revoked: tuple[PatchRef, ...] = ()
    rejected: tuple[PatchRef, ...] = ()  # a Baseline's new excludes: never installed
    unrejected: tuple[PatchRef, ...] = ()
    targets_added: tuple[str, ...] = ()
    targets_removed: tuple[str, ...] = ()
    expires: date | None = None
    expires_in_days: int | None = None  # negative: expired that many days ago
    direction: str | None = None  # Baselines: tightened | loosened | tightened and loosened
    details: tuple[str, ...] = ()
    diff: str | None = None  # Scripts: a unified diff of the content


@dataclass(frozen=True, slots=True)
class Review:
    objects: tuple[ObjectReview, ...]
    warnings: tuple[PlanWarning, ...]


def review(
    base: DesiredState,
    head: DesiredState,
    *,
    now: datetime,
    catalogue: Catalogue | None = None,
    observed: ObservedState | None = None,
) -> Review:
    """Every object change from `base` to `head`, described, and the warnings on the head side.

    `catalogue` None: patch ids are shown bare and not checked. `observed` None or without
    devices: no warning that needs the fleet (targets no enrolled device, approves patches no
    targeted device is missing, groups without members).
    """
    today = now.astimezone(UTC).date()
    old = {document.key: document for document in base.objects}
    new = {document.key: document for document in head.objects}
    object_changes = changes.diff_states(base, head)
    reviews = tuple(
        _review_one(change, old.get(change.key), new.get(change.key), now=now, catalogue=catalogue)
        for change in object_changes
    )
    fleet = observed if observed is not None and observed.devices else None
    found: list[PlanWarning] = []
    for change in object_changes:
        obj = new.get(change.key)
        if obj is None:
            continue
        found += _object_warnings(
            change, obj, old.get(change.key), head, today=today, catalogue=catalogue, fleet=fleet
        )
    if fleet is not None:
        found += approval_reach_warnings(object_changes, head, fleet)
    if catalogue is not None:
        # every Baseline of the head, changed or not: a rule that requires nothing makes any
        # plan look like "no change"
        found += [
            PlanWarning(b.key, WarningCode.RULE_MATCHES_NOTHING, f"spec.rules[{i}]: {message}")
            for b in head.baselines
            for i, message in unmatched_rules(b, catalogue)
        ]
    return Review(reviews, tuple(found))


# --- one object ---------------------------------------------------------------------------------


def _review_one(
    change: ObjectChange,
    before: Document | None,
    after: Document | None,
    *,
    now: datetime,
    catalogue: Catalogue | None,
) -> ObjectReview:
    old_targets, new_targets = _target_words(before), _target_words(after)
    fields: dict[str, Any] = {
        "targets_added": tuple(sorted(new_targets - old_targets)),
        "targets_removed": tuple(sorted(old_targets - new_targets)),
    }
    details: list[str] = []
    if isinstance(after or before, Approval | Whitelist):
        delta = changes.patch_delta(change)
        if delta is not None:
            fields["approved"] = _refs(delta.granted, catalogue)
            fields["revoked"] = _refs(delta.revoked, catalogue)
    if isinstance(after or before, Approval):
        fields |= _approval_fields(_as(Approval, before), _as(Approval, after), now=now)
        details += _approval_details(_as(Approval, before), _as(Approval, after), fields)
    elif isinstance(after or before, Whitelist):
        details += _whitelist_details(_as(Whitelist, before), _as(Whitelist, after))
    elif isinstance(after or before, Baseline):
        old, new = _as(Baseline, before), _as(Baseline, after)
        fields["rejected"] = _refs(_excludes(new) - _excludes(old), catalogue)
        fields["unrejected"] = _refs(_excludes(old) - _excludes(new), catalogue)
        tighter, looser = _baseline_moves(old, new, catalogue)
        # New excludes loosen (they are listed as `rejected`); dropped ones tighten.
        fields["direction"] = _direction(
            tightens=bool(tighter or fields["unrejected"]),
            loosens=bool(looser or fields["rejected"]),
            action=change.action,
        )
        details += tighter + looser
    elif isinstance(after or before, PatchWindow):
        details += _window_details(_as(PatchWindow, before), _as(PatchWindow, after), now=now)
    elif isinstance(after or before, Script):
        fields["diff"] = _script_diff(change.key, _as(Script, before), _as(Script, after))
    details += _field_details(change)
    return ObjectReview(change=change, details=tuple(details), **fields)


D = TypeVar("D", bound=Document)


def _as(kind: type[D], obj: Document | None) -> D | None:
    return obj if isinstance(obj, kind) else None


def _refs(ids: Iterable[str], catalogue: Catalogue | None) -> tuple[PatchRef, ...]:
    return tuple(patch_ref(patch_id, catalogue) for patch_id in sorted(ids))


def patch_ref(patch_id: str, catalogue: Catalogue | None) -> PatchRef:
    """A patch id with its catalogue title and severity (`known` None without a catalogue)."""
    if catalogue is None:
        return PatchRef(patch_id)
    entry = catalogue.get(patch_id)
    if entry is None:
        return PatchRef(patch_id, known=False)
    return PatchRef(patch_id, entry.title, entry.severity, known=True)


def _target_words(obj: Document | None) -> set[str]:
    """A target set as comparable phrases: `group linux-web`, `excluded device db-01`, ..."""
    found = references.targets_of(obj) if obj is not None else None
    if found is None:
        return set()
    return set(target_phrases(found))


def target_phrases(found: Targets) -> list[str]:
    phrases = [f"group {name}" for name in found.groups]
    phrases += [f"device {name}" for name in found.devices]
    if found.selector is not None:
        phrases.append(f"selector {_selector_words(found)}")
    phrases += [f"excluded group {name}" for name in found.exclude.groups]
    phrases += [f"excluded device {name}" for name in found.exclude.devices]
    return phrases


def _selector_words(found: Targets) -> str:
    selector = found.selector
    assert selector is not None  # noqa: S101 - the caller checked
    parts = [f"os={selector.os}"] if selector.os is not None else []
    if selector.os_versions:
        parts.append(f"osVersions={','.join(selector.os_versions)}")
    parts += [f"{key}={value}" for key, value in sorted(selector.labels.items())]
    return " ".join(parts) or "(every device)"


# --- Approval -----------------------------------------------------------------------------------


def _approval_fields(
    before: Approval | None, after: Approval | None, *, now: datetime
) -> dict[str, Any]:
    current = after or before
    assert current is not None  # noqa: S101 - one side exists for every change
    expires = current.spec.expires
    if expires is None:
        return {}
    return {"expires": expires, "expires_in_days": (expires - now.astimezone(UTC).date()).days}


def expiry_words(expires: date | None, in_days: int | None) -> str:
    """`expires 2027-01-31 (in 62 days)`, `expired: last day was 2026-11-01 (29 days ago)` or
    `no expiry`; `expires` is the last day the approval holds."""
    if expires is None or in_days is None:
        return "no expiry"
    if in_days < 0:
        return f"expired: last day was {expires} ({-in_days} day{'s' if in_days != -1 else ''} ago)"
    if in_days == 0:
        return f"expires {expires} (today is its last day)"
    return f"expires {expires} (in {in_days} day{'s' if in_days != 1 else ''})"


def _approval_details(
    before: Approval | None, after: Approval | None, fields: Mapping[str, Any]
) -> list[str]:
    lines: list[str] = []
    for label, old, new in (
        ("reason", before.spec.reason if before else None, after.spec.reason if after else None),
        ("ticket", before.spec.ticket if before else None, after.spec.ticket if after else None),
    ):
        lines += _value_line(label, old, new, removed=after is None)
    old_expiry = before.spec.expires if before else None
    new_expiry = after.spec.expires if after else None
    if after is not None and (before is None or old_expiry != new_expiry):
        words = expiry_words(fields.get("expires"), fields.get("expires_in_days"))
        prefix = f"expiry: was {old_expiry or 'none'}, now " if before is not None else ""
        lines.append(f"{prefix}{words}")
    kept = [p for p in after.spec.patches if p in before.spec.patches] if after and before else []
    if kept:
        lines.append(f"still approves {', '.join(kept)}")
    return lines


def _value_line(label: str, old: str | None, new: str | None, *, removed: bool) -> list[str]:
    if removed:
        return [f"{label} was: {old}"] if old else []
    if old == new:
        return [f"{label}: {new}"] if new else []
    if old is None:
        return [f"{label}: {new}"]
    return [f"{label}: {old!r} → {new!r}" if new else f"{label} removed (was {old!r})"]


# --- Whitelist ----------------------------------------------------------------------------------


def _whitelist_details(before: Whitelist | None, after: Whitelist | None) -> list[str]:
    old = [_filter_words(entry) for entry in before.filters()] if before else []
    new = [_filter_words(entry) for entry in after.filters()] if after else []
    if old == new:
        return []
    return [f"filters: {'; '.join(old) or 'none'} → {'; '.join(new) or 'none'}"]


def _filter_words(entry: Any) -> str:
    parts = [
        f"{label} {', '.join(values)}"
        for label, values in (
            ("classifications", entry.classifications),
            ("severities", entry.severities),
            ("vendors", entry.vendors),
            ("products", entry.products),
        )
        if values
    ]
    return " and ".join(parts) or "every patch"


# --- Baseline -----------------------------------------------------------------------------------


def _excludes(baseline: Baseline | None) -> frozenset[str]:
    return frozenset(baseline.spec.exclude) if baseline else frozenset()


def _includes(baseline: Baseline | None) -> frozenset[str]:
    return frozenset(baseline.spec.include) if baseline else frozenset()


def _baseline_moves(
    before: Baseline | None, after: Baseline | None, catalogue: Catalogue | None
) -> tuple[list[str], list[str]]:
    """(sentences that tighten, sentences that loosen) the baseline; excludes are left to the
    caller, which lists them as rejected patches."""
    tighter: list[str] = []
    looser: list[str] = []
    if before is None or after is None:
        current = after or before
        assert current is not None  # noqa: S101 - one side exists
        verb = "requires" if after is not None else "required"
        lines = [f"{verb}: {rule_words(rule)}" for rule in current.spec.rules]
        if current.spec.include:
            lines.append(f"{verb} always: {', '.join(current.spec.include)}")
        (tighter if after is not None else looser).extend(lines)
        return tighter, looser
    tighter += [
        f"now always requires {patch_ref(patch, catalogue).words()}"
        for patch in sorted(_includes(after) - _includes(before))
    ]
    looser += [
        f"no longer always requires {patch}"
        for patch in sorted(_includes(before) - _includes(after))
    ]
    _rule_moves(before.spec.rules, after.spec.rules, tighter, looser)
    old, new = before.spec, after.spec
    if new.stale_scan_after != old.stale_scan_after:
        line = (
            f"scans count as stale after {format_duration(new.stale_scan_after)} "
            f"(was {format_duration(old.stale_scan_after)})"
        )
        (tighter if new.stale_scan_after < old.stale_scan_after else looser).append(line)
    if new.exclude_action != old.exclude_action:
        line = f"excludeAction: {old.exclude_action} → {new.exclude_action}"
        (tighter if new.exclude_action is ExcludeAction.BLOCK else looser).append(line)
    return tighter, looser


def rule_words(rule: Rule) -> str:
    """A rule in words: `security, critical patches, of severity critical, important,
    rated ≥ 7.0, 7 days after release`."""
    parts = [f"{', '.join(rule.classifications) or 'all'} patches"]
    if rule.severities:
        parts.append(f"of severity {', '.join(rule.severities)}")
    if rule.products:
        parts.append(f"for products {', '.join(rule.products)}")
    if rule.min_rating is not None:
        parts.append(f"rated ≥ {rule.min_rating}")
    days = rule.released_after_days
    parts.append(
        f"{days} day{'s' if days != 1 else ''} after release" if days else "as soon as released"
    )
    return ", ".join(parts)


def _rule_moves(
    old: Sequence[Rule], new: Sequence[Rule], tighter: list[str], looser: list[str]
) -> None:
    gone = [rule for rule in old if rule not in new]
    came = [rule for rule in new if rule not in old]
    if len(gone) == len(came):  # edited in place: compare pairwise, in file order
        for was, now in zip(gone, came, strict=True):
            _rule_edit(was, now, tighter, looser)
        return
    looser += [f"no longer requires: {rule_words(rule)}" for rule in gone]
    tighter += [f"now requires: {rule_words(rule)}" for rule in came]


def _rule_edit(was: Rule, now: Rule, tighter: list[str], looser: list[str]) -> None:
    """A rule matches more patches when a set filter grows (or empties), the rating floor or
    the grace period drops; a product filter change is counted as both directions."""
    widened, narrowed = _set_moves(was, now)
    if now.min_rating != was.min_rating:
        lower = now.min_rating is None or (
            was.min_rating is not None and now.min_rating < was.min_rating
        )
        line = f"minimum rating {_show(was.min_rating)} → {_show(now.min_rating)}"
        (widened if lower else narrowed).append(line)
    if now.released_after_days != was.released_after_days:
        shorter = now.released_after_days < was.released_after_days
        (widened if shorter else narrowed).append(
            f"grace period {was.released_after_days} → {now.released_after_days} days"
        )
    if widened:
        tighter.append(f"rule ({rule_words(now)}) requires more: {'; '.join(widened)}")
    if narrowed:
        looser.append(f"rule ({rule_words(now)}) requires less: {'; '.join(narrowed)}")


def _set_moves(was: Rule, now: Rule) -> tuple[list[str], list[str]]:
    widened: list[str] = []
    narrowed: list[str] = []
    for label in ("classifications", "severities", "products"):
        old, new = set(getattr(was, label)), set(getattr(now, label))
        if old == new:
            continue
        line = f"{label} {', '.join(sorted(old)) or 'any'} → {', '.join(sorted(new)) or 'any'}"
        if not new or (old and old < new):
            widened.append(line)
        elif not old or new < old:
            narrowed.append(line)
        else:
            widened.append(line)
            narrowed.append(line)
    return widened, narrowed


def _direction(*, tightens: bool, loosens: bool, action: ChangeAction) -> str | None:
    if action is not ChangeAction.CHANGED:
        return None
    if tightens and loosens:
        return "tightened and loosened"
    if tightens:
        return "tightened"
    return "loosened" if loosens else None


# --- PatchWindow --------------------------------------------------------------------------------


def _window_details(
    before: PatchWindow | None, after: PatchWindow | None, *, now: datetime
) -> list[str]:
    old, new = _occurrences(before, now=now), _occurrences(after, now=now)
    if before is not None and after is not None and old == new:
        return []
    lines = []
    if before is not None:
        lines.append(f"next occurrences before: {old}")
    if after is not None:
        lines.append(f"next occurrences after: {new}")
    if after is not None and after.spec.approval != (before.spec.approval if before else None):
        lines.append(f"approval: {after.spec.approval}")
    return lines


def _occurrences(window: PatchWindow | None, *, now: datetime) -> str:
    """The next occurrences on the window's own wall clock: `Sun 2026-12-06 02:00-06:00 CET`."""
    if window is None:
        return ""
    spec = window.spec
    if spec.suspend:
        return "none (suspended)"
    zone = ZoneInfo(spec.timezone)
    found = windows.occurrences_between(
        spec, start=now, end=now + OCCURRENCE_HORIZON, limit=OCCURRENCES_SHOWN
    )
    if not found:
        return "none"
    shown = []
    for occurrence in found:
        start, end = occurrence.start.astimezone(zone), occurrence.end.astimezone(zone)
        shown.append(f"{start:%a %Y-%m-%d %H:%M}-{end:%H:%M %Z}")
    named = {f"{o.start.astimezone(zone):%Z}" for o in found} == {spec.timezone}
    return "; ".join(shown) + ("" if named else f" ({spec.timezone})")


# --- Script -------------------------------------------------------------------------------------


def _script_diff(key: ObjectKey, before: Script | None, after: Script | None) -> str | None:
    old = before.spec.content if before else ""
    new = after.spec.content if after else ""
    if old == new:
        return None
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{key}" if before else "/dev/null",
        tofile=f"b/{key}" if after else "/dev/null",
        n=DIFF_CONTEXT,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- every other field --------------------------------------------------------------------------

# Fields the sections above already say in words.
_COVERED = {
    "spec.targets",
    "spec.patches",
    "spec.reason",
    "spec.ticket",
    "spec.expires",
    "spec.include",
    "spec.exclude",
    "spec.rules",
    "spec.staleScanAfter",
    "spec.excludeAction",
    "spec.content",
    "spec.approval",
}


# Fields of a new object its heading or its occurrences already say.
_NAMED = {"apiVersion", "kind", "metadata.name", "metadata.tenant", "spec.timezone"}


def _field_details(change: ObjectChange) -> list[str]:
    """`spec.duration: 4h → 6h` for every changed field no section above covers; for a new
    object, every such field it sets to something (`spec.reboot: never`,
    `spec.rollout.maxConcurrent: 3`; defaults included, since what it will do is what a
    reviewer approves; fields left empty or off are not listed)."""
    if change.action is ChangeAction.REMOVED:
        return []
    old, new = _flatten(change.before or {}), _flatten(change.after or {})
    added = change.action is ChangeAction.ADDED
    lines = []
    for path in sorted(old.keys() | new.keys()):
        if _covered(path) or (added and (path in _NAMED or path.startswith("spec.recurrence."))):
            continue
        if added:
            if not _unset(new.get(path)):
                lines.append(f"{path}: {_show(new.get(path))}")
        elif old.get(path) != new.get(path):
            lines.append(f"{path}: {_show(old.get(path))} → {_show(new.get(path))}")
    return lines


def _unset(value: Any) -> bool:
    """Empty or off (None, [], {}, False), which a new object's block leaves out; 0 is a value
    (`maxFailures: 0` stops at the first failure)."""
    return value is None or value is False or value in ([], {})


def _covered(path: str) -> bool:
    return any(path == c or path.startswith((c + ".", c + "[")) for c in _COVERED)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return found
    return {prefix: value}


def _show(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


# --- warnings -----------------------------------------------------------------------------------


def _object_warnings(
    change: ObjectChange,
    obj: Document,
    before: Document | None,
    head: DesiredState,
    *,
    today: date,
    catalogue: Catalogue | None,
    fleet: ObservedState | None,
) -> list[PlanWarning]:
    found: list[PlanWarning] = []
    key = change.key
    if catalogue is not None:
        listed = _listed_ids(obj) - _listed_ids(before)
        unknown = sorted(patch for patch in listed if patch not in catalogue)
        if unknown:
            found.append(
                PlanWarning(
                    key,
                    WarningCode.UNKNOWN_PATCH,
                    f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the "
                    f"patch catalogue ({len(catalogue)} patches): a typo, or a patch no feed "
                    "has published yet",
                )
            )
    if isinstance(obj, Approval):
        found += _approval_warnings(key, obj, head, today=today, catalogue=catalogue)

    found += _linux_auto_warnings(key, obj, head, fleet)
    found += _target_warnings(key, obj, before, head, fleet)
    return found


def _listed_ids(obj: Document | None) -> frozenset[str]:
    if isinstance(obj, Approval | Whitelist):
        return changes.explicit_patch_ids(changes.as_json(obj))
    if isinstance(obj, Baseline):
        return _includes(obj) | _excludes(obj)
    return frozenset()


def _approval_warnings(
    key: ObjectKey,
    approval: Approval,
    head: DesiredState,
    *,
    today: date,
    catalogue: Catalogue | None,
) -> list[PlanWarning]:
    if approval.is_expired(today=today):
        return [
            PlanWarning(
                key,
                WarningCode.EXPIRED_ON_ARRIVAL,
                f"already expired (last day {approval.spec.expires}) when this change "
                "arrives: it approves nothing",
            )
        ]
    if catalogue is None:
        return []
    families = references.target_os_families(approval.spec.targets, approval.tenant, head)
    patch_families = {
        entry.os for patch in approval.spec.patches if (entry := catalogue.get(patch)) is not None
    }
    if len(families) == 1 and patch_families and None not in patch_families:
        targeted = next(iter(families))
        if targeted not in patch_families:
            return [
                PlanWarning(
                    key,
                    WarningCode.APPROVES_NOTHING,
                    f"approves {', '.join(sorted(str(f) for f in patch_families))} patches for "
                    f"{targeted} devices only: it approves nothing",
                )
            ]
    return []


def _linux_auto_warnings(
    key: ObjectKey, obj: Document, head: DesiredState, fleet: ObservedState | None
) -> list[PlanWarning]:
    """DESIGN.md 3.2: `approval: auto` and whitelist filters approve nothing on Linux."""
    if isinstance(obj, PatchWindow) and obj.spec.approval is ApprovalMode.AUTO:
        what = "approval: auto approves"
    elif isinstance(obj, Whitelist) and obj.filters():
        what = "whitelist filters approve"
    else:
        return []
    found = references.targets_of(obj)
    assert found is not None  # noqa: S101 - both kinds have targets
    linux = OsFamily.LINUX in references.target_os_families(found, obj.tenant, head)
    reached = _reached(found, obj.tenant, head, fleet) if fleet is not None else []
    linux_devices = [d.name for d in reached if d.os is OsFamily.LINUX]
    if not linux and not linux_devices:
        return []
    on = f" ({len(linux_devices)} targeted Linux device(s))" if linux_devices else ""
    return [
        PlanWarning(
            key,
            WarningCode.LINUX_AUTO_APPROVAL,
            f"{what} nothing on Linux devices{on}: Linux patches are approved only "
            "by explicit id in an Approval or Whitelist",
        )
    ]


def _reached(
    found: Targets, owner: str | None, head: DesiredState, fleet: ObservedState
) -> list[Any]:
    return [
        device
        for device in fleet.devices
        if targets.matches(
            found, owner=owner, device=targets.effective_device(device, head), desired=head
        )
    ]


def _target_warnings(
    key: ObjectKey,
    obj: Document,
    before: Document | None,
    head: DesiredState,
    fleet: ObservedState | None,
) -> list[PlanWarning]:
    """Device names nobody knows, and (with a fleet) groups with no enrolled member, among the
    targets this change adds."""
    found = references.targets_of(obj)
    if found is None:
        return []
    old = references.targets_of(before) if before is not None else None
    new_devices = set(found.devices) - set(old.devices if old else ())
    known = {d.name for d in head.of_kind(Device)} | {
        name for group in head.of_kind(DeviceGroup) for name in group.spec.devices
    }
    if fleet is not None:
        known |= {d.name for d in fleet.devices}
    warnings = [
        PlanWarning(
            key,
            WarningCode.UNKNOWN_TARGET,
            f"targets device {name!r}, which is not "
            f"{'enrolled, ' if fleet is not None else ''}declared in inventory/ "
            "or listed by any group",
        )
        for name in sorted(new_devices - known)
    ]
    if fleet is None:
        return warnings
    for name in sorted(set(found.groups) - set(old.groups if old else ())):
        group = head.visible(DeviceGroup, obj.tenant, name)
        if group is not None and not any(
            targets.group_contains(group, targets.effective_device(d, head)) for d in fleet.devices
        ):
            warnings.append(
                PlanWarning(
                    key,
                    WarningCode.UNKNOWN_TARGET,
                    f"targets group {name!r}, which contains no enrolled device",
                )
            )
    return warnings


def approval_reach_warnings(
    object_changes: Sequence[ObjectChange], head: DesiredState, observed: ObservedState
) -> list[PlanWarning]:
    """Approvals that grant patches no targeted device is missing approve nothing (yet).

    Needs the fleet: without devices there is nothing to say.
    """
    if not observed.devices:
        return []
    missing_by_device = {device_id: set(scan.missing) for device_id, scan in observed.scans.items()}
    found: list[PlanWarning] = []
    for change in object_changes:
        delta = changes.patch_delta(change)
        if change.key.kind != Approval.KIND or delta is None or not delta.granted:
            continue
        approval = head.get(Approval, change.key.tenant, change.key.name)
        if approval is None:
            continue
        reached = _reached(approval.spec.targets, approval.tenant, head, observed)
        needed = {p for d in reached for p in missing_by_device.get(d.id, ())} & delta.granted
        if not reached:
            found.append(
                PlanWarning(change.key, WarningCode.APPROVES_NOTHING, "targets no enrolled device")
            )
        elif not needed:
            found.append(
                PlanWarning(
                    change.key,
                    WarningCode.APPROVES_NOTHING,
                    f"approves {', '.join(sorted(delta.granted))}, which no targeted "
                    f"device is missing ({len(reached)} device(s) targeted)",
                )
            )
    return found


# --- baseline rules against the catalogue --------------------------------------------------------


def unmatched_rules(baseline: Baseline, catalogue: Catalogue) -> list[tuple[int, str]]:
    """(rule index, why) of every rule of `baseline` that matches none of the catalogue's
    patches of the baseline's OS, whatever their age (purely computational).

    Such a rule requires nothing: devices look compliant however much they miss (the Linux
    rule `severities: [critical, important]` against Debian `Packages` records, which carry no
    severity). Nothing is said when the catalogue holds no judgeable patch of that OS.
    """
    entries = [
        e
        for e in catalogue.values()
        if e.os == baseline.spec.os.value and e.classification is not None
    ]
    if not entries:
        return []
    found = []
    for index, rule in enumerate(baseline.spec.rules):
        if not any(_selects(rule, entry) for entry in entries):
            found.append((index, _unmatched_words(rule, entries, baseline.spec.os.value)))
    return found


def _selects(rule: Rule, entry: CatalogueEntry) -> bool:
    return decisions.rule_selects(
        rule,
        classification=Classification(entry.classification or "other"),
        severity=Severity.parse(entry.severity),
        product=entry.product,
        rating=entry.rating,
    )


def _unmatched_words(rule: Rule, entries: Sequence[CatalogueEntry], os: str) -> str:
    severities = _tally(e.severity or "unspecified" for e in entries)
    classes = _tally(e.classification or "other" for e in entries)
    return (
        f"matches none of the {len(entries)} {os} patches in the catalogue ({rule_words(rule)}; "
        f"the catalogue's severities: {severities}; classifications: {classes}), so it "
        "requires nothing and devices look compliant whatever they miss"
    )


def _tally(values: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{value} {count}" for value, count in ordered)
