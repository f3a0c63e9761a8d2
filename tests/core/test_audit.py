"""Audit events as values: what they say about their change, and their stored JSON form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.core.audit import AuditEvent, Rewrite
from controller.core.changes import AuditEventType, ChangeAction, ObjectChange, Verdict
from controller.core.commits import (
    UNSIGNED,
    CommitFacts,
    Person,
    PullRequest,
    PullRequestStyle,
)
from controller.kinds import ObjectKey

ALICE = Person("Alice Admin", "alice@example.com")
COMMIT = CommitFacts(
    sha="c" * 40,
    parents=("a" * 40,),
    author=ALICE,
    committer=ALICE,
    authored_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    committed_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    message="Approve KB5034127 (#12)",
    pull_request=PullRequest(12, PullRequestStyle.GITHUB_SQUASH),
    trailers=(),
    signature=UNSIGNED,
)
KEY = ObjectKey("Approval", "acme", "kb5034127")
APPROVAL: dict[str, Any] = {"kind": "Approval", "spec": {"patches": ["KB5034127"]}}
GRANTED = AuditEvent(
    type=AuditEventType.APPROVAL_GRANTED,
    revision=f"main@sha1:{'c' * 40}",
    commit=COMMIT,
    change=ObjectChange(KEY, ChangeAction.ADDED, AuditEventType.APPROVAL_GRANTED, None, APPROVAL),
    path="policies/approvals/kb5034127.yaml",
    verdict=Verdict(applied=False, reason="alice@example.com may not approve for acme"),
)
REWRITTEN = AuditEvent(
    type=AuditEventType.HISTORY_REWRITTEN,
    revision=f"main@sha1:{'d' * 40}",
    commit=None,
    rewrite=Rewrite(old_tip="e" * 40, new_tip="d" * 40, merge_base=None, dropped=("e" * 40,)),
)
INVALID = AuditEvent(
    type=AuditEventType.POLICY_INVALID,
    revision=f"main@sha1:{'c' * 40}",
    commit=COMMIT,
    errors=("policies/a.yaml:1:1: kind: unknown kind 'Baselin'",),
)


@pytest.mark.parametrize(
    "event",
    [GRANTED, REWRITTEN, INVALID],
    ids=["approval-with-verdict", "history-rewritten", "policy-invalid"],
)
def test_events_survive_their_stored_form(event: AuditEvent) -> None:
    """`from_dict(to_dict(event))` gives the event back, whatever parts it has."""
    assert event == AuditEvent.from_dict(event.to_dict())


def test_an_event_exposes_its_change() -> None:
    """Key, before and after come from the change; an event without one has none."""
    assert ((KEY, None, APPROVAL), (None, None, None)) == (
        (GRANTED.key, GRANTED.before, GRANTED.after),
        (REWRITTEN.key, REWRITTEN.before, REWRITTEN.after),
    )


def test_the_stored_form_names_object_action_and_verdict() -> None:
    """The JSON form is what `patchctl audit --json` prints: flat names, camelCase keys."""
    stored = GRANTED.to_dict()
    assert (
        "ApprovalGranted",
        {"kind": "Approval", "tenant": "acme", "name": "kb5034127"},
        "added",
        {"applied": False, "reason": "alice@example.com may not approve for acme"},
    ) == (stored["type"], stored["object"], stored["action"], stored["verdict"])
