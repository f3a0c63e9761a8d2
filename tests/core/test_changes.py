"""The pure change vocabulary: object diffs, event names, patch deltas, expiries, notifications."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from controller.core import changes
from controller.core.changes import AuditEventType, ChangeAction
from controller.core.desired import DesiredState
from controller.kinds import KINDS, Approval, Baseline, Document, ObjectKey, Whitelist
from controller.kinds.notifications import EventType


def make_approval(
    name: str = "openssl",
    patches: tuple[str, ...] = ("USN-1-1",),
    *,
    tenant: str | None = "acme",
    expires: str | None = None,
    reason: str = "fix",
) -> Approval:
    spec: dict[str, Any] = {
        "patches": list(patches),
        "targets": {"groups": ["web"]},
        "reason": reason,
    }
    if expires is not None:
        spec["expires"] = expires
    return Approval.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "Approval",
            "metadata": {"name": name, "tenant": tenant},
            "spec": spec,
        }
    )


def make_baseline(name: str = "servers", include: tuple[str, ...] = ()) -> Baseline:
    return Baseline.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "Baseline",
            "metadata": {"name": name, "tenant": "acme"},
            "spec": {"os": "windows", "targets": {"groups": ["web"]}, "include": list(include)},
        }
    )


def make_whitelist(*ids: str) -> Whitelist:
    return Whitelist.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "Whitelist",
            "metadata": {"name": "bulk", "tenant": "acme"},
            "spec": {
                "targets": {"groups": ["web"]},
                "patches": [{"id": i} for i in ids] + [{"classifications": ["security"]}],
            },
        }
    )


def state(*objects: Document) -> DesiredState:
    return DesiredState(revision="main@sha1:x", objects=objects)


def summary(found: tuple[changes.ObjectChange, ...]) -> list[tuple[str, str, str]]:
    return [(str(c.key), str(c.action), str(c.event)) for c in found]


def test_every_object_of_a_first_revision_is_added() -> None:
    """Diffing from no revision at all reports every object as added, with no `before`."""
    found = changes.diff_states(None, state(make_baseline(), make_approval()))
    assert [
        ("Approval/acme/openssl", "added", "ApprovalGranted"),
        ("Baseline/acme/servers", "added", "BaselineAdded"),
    ] == summary(found)
    assert [None, None] == [c.before for c in found]


def test_added_changed_removed_and_unchanged_objects() -> None:
    """Each object appears once, in kind/tenant/name order; unchanged objects do not appear."""
    before = state(make_approval("a"), make_approval("b"), make_baseline())
    after = state(make_approval("a", ("USN-2-1",)), make_baseline(), make_approval("c"))
    assert [
        ("Approval/acme/a", "changed", "ApprovalChanged"),
        ("Approval/acme/b", "removed", "ApprovalRevoked"),
        ("Approval/acme/c", "added", "ApprovalGranted"),
    ] == summary(changes.diff_states(before, after))


def test_before_and_after_are_the_objects_as_json() -> None:
    """`before` and `after` are `model_dump(mode="json", by_alias=True)` of the two versions."""
    old, new = make_approval(expires="2027-01-31"), make_approval(expires="2027-02-28")
    (change,) = changes.diff_states(state(old), state(new))
    assert (
        old.model_dump(mode="json", by_alias=True),
        new.model_dump(mode="json", by_alias=True),
    ) == (
        change.before,
        change.after,
    )
    assert "2027-02-28" == change.after["spec"]["expires"]
    assert "apiVersion" in change.after


ACTIONS = (ChangeAction.ADDED, ChangeAction.CHANGED, ChangeAction.REMOVED)
SPECIAL_NAMES = {
    ("Approval", ChangeAction.ADDED): "ApprovalGranted",
    ("Approval", ChangeAction.CHANGED): "ApprovalChanged",
    ("Approval", ChangeAction.REMOVED): "ApprovalRevoked",
    ("PatchWindow", ChangeAction.ADDED): "WindowAdded",
    ("PatchWindow", ChangeAction.CHANGED): "WindowChanged",
    ("PatchWindow", ChangeAction.REMOVED): "WindowRemoved",
}


@pytest.mark.parametrize("action", ACTIONS, ids=str)
@pytest.mark.parametrize("kind", sorted(KINDS), ids=str)
def test_every_kind_has_an_event_for_every_action(kind: str, action: ChangeAction) -> None:
    """Approvals are granted/changed/revoked, windows are `Window...`, other kinds `<Kind><Action>`."""
    expected = SPECIAL_NAMES.get((kind, action), f"{kind}{str(action).capitalize()}")
    assert expected == str(changes.event_for(kind, action))


def test_only_approvals_expire() -> None:
    """An expiry is an Approval event; asking it of another kind is a programming error."""
    assert AuditEventType.APPROVAL_EXPIRED == changes.event_for("Approval", ChangeAction.EXPIRED)
    with pytest.raises(ValueError, match="Baseline objects cannot be expired"):
        changes.event_for("Baseline", ChangeAction.EXPIRED)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            None, make_approval(patches=("A", "B")), ({"A", "B"}, set(), set()), id="grant"
        ),
        pytest.param(
            make_approval(patches=("A", "B")), None, (set(), {"A", "B"}, set()), id="revoke"
        ),
        pytest.param(
            make_approval(patches=("A", "B")),
            make_approval(patches=("B", "C")),
            ({"C"}, {"A"}, {"B"}),
            id="swap-one",
        ),
        pytest.param(
            make_approval(patches=("A",)),
            make_approval(patches=("A",), reason="other"),
            (set(), set(), {"A"}),
            id="reason-only",
        ),
        pytest.param(
            make_whitelist("KB1"),
            make_whitelist("KB1", "KB2"),
            ({"KB2"}, set(), {"KB1"}),
            id="whitelist-ids",
        ),
    ],
)
def test_patch_delta_names_granted_revoked_and_kept_ids(
    before: Document | None, after: Document | None, expected: tuple[set[str], set[str], set[str]]
) -> None:
    """An approving change grants the ids it adds and revokes the ids it drops; filters are not ids."""
    (change,) = changes.diff_objects([before] if before else [], [after] if after else [])
    delta = changes.patch_delta(change)
    assert delta is not None
    assert expected == (set(delta.granted), set(delta.revoked), set(delta.kept))
    assert "acme" == delta.tenant


def test_patch_queries_match_any_id_a_change_touches() -> None:
    """`touches_patch` answers `--patch` queries; non-approving kinds never match."""
    (grant,) = changes.diff_objects([], [make_approval(patches=("USN-9-1",))])
    (baseline,) = changes.diff_objects([], [make_baseline(include=("USN-9-1",))])
    assert (True, False, False) == (
        changes.touches_patch(grant, "USN-9-1"),
        changes.touches_patch(grant, "KB1"),
        changes.touches_patch(baseline, "USN-9-1"),
    )
    assert changes.patch_delta(baseline) is None


@pytest.mark.parametrize(
    ("expires", "since", "today", "expired_on"),
    [
        pytest.param("2027-01-31", None, date(2027, 1, 31), None, id="holds-through-its-last-day"),
        pytest.param(
            "2027-01-31", None, date(2027, 2, 1), date(2027, 2, 1), id="expires-the-day-after"
        ),
        pytest.param(
            "2027-01-31",
            date(2027, 1, 31),
            date(2027, 2, 1),
            date(2027, 2, 1),
            id="reported-once-in-window",
        ),
        pytest.param("2027-01-31", date(2027, 2, 1), date(2027, 3, 1), None, id="already-reported"),
        pytest.param(None, None, date(2099, 1, 1), None, id="never-expires"),
    ],
)
def test_expiry_is_derived_from_today(
    expires: str | None, since: date | None, today: date, expired_on: date | None
) -> None:
    """An approval expires on the day after `expires`, reported when that day falls in (since, today]."""
    found = changes.detect_expired([make_approval(expires=expires)], since=since, today=today)
    assert expired_on == (found[0].expired_on if found else None)
    if found:
        change = found[0].change
        assert (
            AuditEventType.APPROVAL_EXPIRED,
            ChangeAction.EXPIRED,
            ObjectKey("Approval", "acme", "openssl"),
        ) == (
            change.event,
            change.action,
            change.key,
        )
        assert (set(), {"USN-1-1"}) == (
            set(changes.patch_delta(change).granted),  # type: ignore[union-attr]
            set(changes.patch_delta(change).revoked),  # type: ignore[union-attr]
        )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (AuditEventType.APPROVAL_GRANTED, EventType.APPROVAL_CHANGED),
        (AuditEventType.APPROVAL_EXPIRED, EventType.APPROVAL_CHANGED),
        (AuditEventType.APPROVAL_REJECTED, EventType.APPROVAL_REJECTED),
        (AuditEventType.POLICY_INVALID, EventType.POLICY_INVALID),
        (AuditEventType.BASELINE_CHANGED, EventType.CONFIGURATION_CHANGED),
        (AuditEventType.HISTORY_REWRITTEN, EventType.CONFIGURATION_CHANGED),
    ],
    ids=str,
)
def test_audit_events_reach_notification_subscriptions(
    event: AuditEventType, expected: EventType
) -> None:
    """Every audit event maps to the Notification event a subscriber names."""
    assert expected == changes.notification_event(event)
