"""What changed between two policy revisions, named in the audit trail's vocabulary.

Purely computational, no side effects: values in, values out. The history walker
(`controller.sources.history`) feeds it consecutive revisions of the tracked branch; the access
checks (`controller.runtime.access`) judge the changes it names; `today` is always a parameter.

The vocabulary (`AuditEventType`):

- `ApprovalGranted` / `ApprovalChanged` / `ApprovalRevoked`: an Approval was added / edited /
  removed; `ApprovalExpired`: its `expires` day has passed (derived from `today`, no commit);
  `ApprovalRejected`: a change to what is approved was not applied (unsigned, or by someone
  the access policy does not allow for the tenant).
- `BaselineAdded` / `BaselineChanged` / `BaselineRemoved`, and the same for `Whitelist...`,
  `Window...` (PatchWindow) and `Script...`; every other kind as `<Kind>Added` /
  `<Kind>Changed` / `<Kind>Removed` (`TenantAdded`, `DeviceGroupChanged`, ...).
- `PolicyInvalid`: a commit whose policy does not validate (the trail continues from the last
  valid revision); `HistoryRewritten`: the tracked branch was force-pushed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from controller.core.desired import DesiredState
from controller.core.records import quick_init
from controller.kinds import KINDS, Approval, Document, ObjectKey, PatchWindow, Whitelist
from controller.kinds.notifications import EventType

JsonObject = Mapping[str, Any]


class ChangeAction(StrEnum):
    """What happened to one policy object."""

    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"
    EXPIRED = "expired"  # an Approval past its `expires` day: the file is unchanged


class AuditEventType(StrEnum):
    """Every audit event patchctl records; see the module docstring for when each happens.

    Stored as an audit row's `action`. Distinct from `kinds.notifications.EventType` on purpose:
    an audit event names what happened to one policy object (one per kind and action), an
    `EventType` names an alert or a Notification subscription. Several audit events reach one
    subscription (`notification_event`); the three that share a name with an `EventType`
    (`ApprovalChanged`, `ApprovalRejected`, `PolicyInvalid`) are the same occurrence seen from
    the trail and from the alerts.
    """

    APPROVAL_GRANTED = "ApprovalGranted"
    APPROVAL_CHANGED = "ApprovalChanged"
    APPROVAL_REVOKED = "ApprovalRevoked"
    APPROVAL_EXPIRED = "ApprovalExpired"
    APPROVAL_REJECTED = "ApprovalRejected"
    APPROVAL_PROPOSAL_ADDED = "ApprovalProposalAdded"
    APPROVAL_PROPOSAL_CHANGED = "ApprovalProposalChanged"
    APPROVAL_PROPOSAL_REMOVED = "ApprovalProposalRemoved"
    BASELINE_ADDED = "BaselineAdded"
    BASELINE_CHANGED = "BaselineChanged"
    BASELINE_REMOVED = "BaselineRemoved"
    WHITELIST_ADDED = "WhitelistAdded"
    WHITELIST_CHANGED = "WhitelistChanged"
    WHITELIST_REMOVED = "WhitelistRemoved"
    WINDOW_ADDED = "WindowAdded"
    WINDOW_CHANGED = "WindowChanged"
    WINDOW_REMOVED = "WindowRemoved"
    SCRIPT_ADDED = "ScriptAdded"
    SCRIPT_CHANGED = "ScriptChanged"
    SCRIPT_REMOVED = "ScriptRemoved"
    SCRIPT_JOB_ADDED = "ScriptJobAdded"
    SCRIPT_JOB_CHANGED = "ScriptJobChanged"
    SCRIPT_JOB_REMOVED = "ScriptJobRemoved"
    SCAN_SCHEDULE_ADDED = "ScanScheduleAdded"
    SCAN_SCHEDULE_CHANGED = "ScanScheduleChanged"
    SCAN_SCHEDULE_REMOVED = "ScanScheduleRemoved"
    NOTIFICATION_ADDED = "NotificationAdded"
    NOTIFICATION_CHANGED = "NotificationChanged"
    NOTIFICATION_REMOVED = "NotificationRemoved"
    REPORT_SCHEDULE_ADDED = "ReportScheduleAdded"
    REPORT_SCHEDULE_CHANGED = "ReportScheduleChanged"
    REPORT_SCHEDULE_REMOVED = "ReportScheduleRemoved"
    PATCH_FEED_ADDED = "PatchFeedAdded"
    PATCH_FEED_CHANGED = "PatchFeedChanged"
    PATCH_FEED_REMOVED = "PatchFeedRemoved"
    TENANT_ADDED = "TenantAdded"
    TENANT_CHANGED = "TenantChanged"
    TENANT_REMOVED = "TenantRemoved"
    DEVICE_GROUP_ADDED = "DeviceGroupAdded"
    DEVICE_GROUP_CHANGED = "DeviceGroupChanged"
    DEVICE_GROUP_REMOVED = "DeviceGroupRemoved"
    DEVICE_ADDED = "DeviceAdded"
    DEVICE_CHANGED = "DeviceChanged"
    DEVICE_REMOVED = "DeviceRemoved"
    POLICY_INVALID = "PolicyInvalid"
    HISTORY_REWRITTEN = "HistoryRewritten"


# The kinds whose events read better under another word than the kind's own name.
_EVENT_PREFIX = {PatchWindow.KIND: "Window"}
_ACTION_WORDS = {
    ChangeAction.ADDED: "Added",
    ChangeAction.CHANGED: "Changed",
    ChangeAction.REMOVED: "Removed",
}
_APPROVAL_EVENTS = {
    ChangeAction.ADDED: AuditEventType.APPROVAL_GRANTED,
    ChangeAction.CHANGED: AuditEventType.APPROVAL_CHANGED,
    ChangeAction.REMOVED: AuditEventType.APPROVAL_REVOKED,
    ChangeAction.EXPIRED: AuditEventType.APPROVAL_EXPIRED,
}
APPROVAL_EVENTS = frozenset(_APPROVAL_EVENTS.values())


def _vocabulary() -> dict[tuple[str, ChangeAction], AuditEventType]:
    """Every (kind, action) pair and its event; a kind without a name here fails at import."""
    table = {(Approval.KIND, action): event for action, event in _APPROVAL_EVENTS.items()}
    for kind in KINDS:
        if kind != Approval.KIND:
            for action, word in _ACTION_WORDS.items():
                table[kind, action] = AuditEventType(f"{_EVENT_PREFIX.get(kind, kind)}{word}")
    return table


_EVENTS = _vocabulary()


def event_for(kind: str, action: ChangeAction) -> AuditEventType:
    """The event naming `action` on an object of `kind`; ValueError for an unknown pair."""
    try:
        return _EVENTS[kind, action]
    except KeyError:
        raise ValueError(f"{kind} objects cannot be {action}") from None


@quick_init
@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One policy object added, changed, removed or expired, with its content before and after.

    `before` and `after` are the objects as JSON (`model_dump(mode="json", by_alias=True)`):
    what the audit trail stores and prints. They are never mutated.
    """

    key: ObjectKey
    action: ChangeAction
    event: AuditEventType
    before: JsonObject | None
    after: JsonObject | None

    @property
    def is_approval(self) -> bool:
        return self.key.kind == Approval.KIND


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a change takes effect, and why: written next to the change in the audit trail."""

    applied: bool
    reason: str


def as_json(document: Document) -> dict[str, Any]:
    """A policy object as the audit trail stores it: JSON types, YAML field names."""
    return document.model_dump(mode="json", by_alias=True)


class JsonMemo:
    """`as_json`, computed once per object (the same object, not an equal one): for diffs of
    the same objects over and over, where one change's `after` is the next one's `before`.

    Holds every object it was given (so their ids are not reused) for as long as it lives.
    """

    def __init__(self) -> None:
        self._dumped: dict[int, tuple[Document, JsonObject]] = {}

    def __call__(self, document: Document) -> JsonObject:
        found = self._dumped.get(id(document))
        if found is None:
            found = self._dumped[id(document)] = (document, as_json(document))
        return found[1]


def diff_objects(
    before: Iterable[Document],
    after: Iterable[Document],
    *,
    dump: Callable[[Document], JsonObject] = as_json,
) -> tuple[ObjectChange, ...]:
    """One change per object added, changed or removed between two sets of objects.

    The sets may be whole revisions or just the objects of the files a commit touched: an object
    that appears in neither is unchanged. Keys are unique within each set (a valid policy).
    Changes come in a stable order: by kind, tenant and name. `dump` gives an object's JSON:
    `as_json`, or a memo of it when the same objects are diffed again (the audit walk: an
    object's `after` is its next change's `before`).
    """
    old = {document.key: document for document in before}
    new = {document.key: document for document in after}
    return diff_keyed(old, new, dump=dump)


def diff_keyed(
    old: Mapping[ObjectKey, Document],
    new: Mapping[ObjectKey, Document],
    *,
    dump: Callable[[Document], JsonObject] = as_json,
) -> tuple[ObjectChange, ...]:
    """`diff_objects` of objects already keyed by `Document.key` (the caller had the keys)."""
    changes: list[ObjectChange] = []
    keys = old.keys() | new.keys()
    # Most commits of a history change one object: no order to establish then.
    for key in sorted(keys, key=_key_order) if len(keys) > 1 else keys:
        was, now = old.get(key), new.get(key)
        if was is None and now is not None:
            action = ChangeAction.ADDED
        elif now is None and was is not None:
            action = ChangeAction.REMOVED
        elif was != now:
            action = ChangeAction.CHANGED
        else:
            continue
        changes.append(
            ObjectChange(
                key=key,
                action=action,
                event=event_for(key.kind, action),
                before=dump(was) if was is not None else None,
                after=dump(now) if now is not None else None,
            )
        )
    return tuple(changes)


def diff_states(before: DesiredState | None, after: DesiredState) -> tuple[ObjectChange, ...]:
    """Every object change from one revision to the next; `before` None is an empty repository."""
    return diff_objects(before.objects if before is not None else (), after.objects)


def _key_order(key: ObjectKey) -> tuple[str, str, str]:
    return (key.kind, key.tenant or "", key.name)


# --- patches granted and revoked ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatchDelta:
    """The patch ids an approving change grants or revokes, for one tenant (None: every tenant).

    `kept` are ids listed before and after: the change touched them (targets, expiry, reason)
    without granting or revoking them. `patches` is every id involved: what `--patch` queries match.
    """

    tenant: str | None
    granted: frozenset[str]
    revoked: frozenset[str]
    kept: frozenset[str]

    @property
    def patches(self) -> frozenset[str]:
        return self.granted | self.revoked | self.kept


def patch_delta(change: ObjectChange) -> PatchDelta | None:
    """The explicit patch ids an Approval or Whitelist change grants or revokes; None otherwise.

    Works on the JSON content alone, so events read back from the store answer it too. An
    expiry or a rejected grant revokes nothing by itself: callers read `change.action` and the
    verdict for that; here an expiry lists the approval's ids as revoked.
    """
    if change.key.kind not in {Approval.KIND, Whitelist.KIND}:
        return None
    before = explicit_patch_ids(change.before)
    after = explicit_patch_ids(change.after)
    if change.action is ChangeAction.EXPIRED:
        return PatchDelta(change.key.tenant, frozenset(), before, frozenset())
    return PatchDelta(change.key.tenant, after - before, before - after, before & after)


def explicit_patch_ids(document: JsonObject | None) -> frozenset[str]:
    """The explicit ids an Approval or Whitelist (as JSON) lists; filters are not ids."""
    if document is None:
        return frozenset()
    entries = document.get("spec", {}).get("patches", ())
    ids = (entry.get("id") if isinstance(entry, Mapping) else entry for entry in entries)
    return frozenset(patch for patch in ids if isinstance(patch, str))


def touches_patch(change: ObjectChange, patch_id: str) -> bool:
    """Whether a change grants, revokes or edits an approval of `patch_id` (a `--patch` query)."""
    delta = patch_delta(change)
    return delta is not None and patch_id in delta.patches


# --- expiry ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """An Approval that stopped approving: `expired_on` is the first day it approves nothing."""

    change: ObjectChange
    expired_on: date


def detect_expired(
    approvals: Iterable[Approval], *, since: date | None, today: date
) -> tuple[Expiry, ...]:
    """The approvals whose expiry happened in the days after `since`, up to and including `today`.

    An approval holds through its `expires` day and approves nothing from the next day on, so
    it expires on `expires + 1 day`. Calling this once per day with `since` set to the previous
    call's `today` yields each expiry exactly once; `since=None` yields every expiry so far.
    """
    found: list[Expiry] = []
    for approval in approvals:
        if approval.spec.expires is None:
            continue
        expired_on = approval.spec.expires + timedelta(days=1)
        if expired_on > today or (since is not None and expired_on <= since):
            continue
        content = as_json(approval)
        change = ObjectChange(
            key=approval.key,
            action=ChangeAction.EXPIRED,
            event=AuditEventType.APPROVAL_EXPIRED,
            before=content,
            after=content,
        )
        found.append(Expiry(change, expired_on))
    return tuple(sorted(found, key=lambda e: (e.expired_on, _key_order(e.change.key))))


# --- notifications ---------------------------------------------------------------------------

_NOTIFICATIONS = {
    **dict.fromkeys(APPROVAL_EVENTS, EventType.APPROVAL_CHANGED),
    AuditEventType.APPROVAL_REJECTED: EventType.APPROVAL_REJECTED,
    AuditEventType.POLICY_INVALID: EventType.POLICY_INVALID,
}


def notification_event(event: AuditEventType) -> EventType:
    """The Notification subscription an audit event reaches (`events:` in a Notification).

    Approval grants, edits, revocations and expiries reach `ApprovalChanged`; rejections
    `ApprovalRejected`; invalid commits `PolicyInvalid`; every other change, including a
    rewritten history, `ConfigurationChanged`.
    """
    return _NOTIFICATIONS.get(event, EventType.CONFIGURATION_CHANGED)
