"""Audit events: one entry of the audit trail per change a commit made. Purely computational.

The walker (`controller.sources.history`) produces them, the access rules
(`controller.core.access`) attach verdicts, the store keeps them as JSON (`to_dict`/`from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from controller.core import changes
from controller.core.changes import AuditEventType, ObjectChange, Verdict
from controller.core.commits import CommitFacts
from controller.core.records import quick_init
from controller.kinds import ObjectKey


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A force-push: the recorded tip left the branch; `dropped` are the commits that went with it
    (first-parent, oldest first; empty when the old tip is no longer in the repository)."""

    old_tip: str
    new_tip: str
    merge_base: str | None
    dropped: tuple[str, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail.

    `revision` is where the event took effect (`main@sha1:<sha>`); `commit` the commit that made
    the change, which differs from the revision's commit only when invalid commits came between
    (the change took effect at the next valid one). `commit` is None for what no commit did: a
    `HistoryRewritten` event and the changes the rewrite undid. `verdict` is set by the access
    checks (`controller.core.access.judge_events`) on changes to approving kinds.
    """

    type: AuditEventType
    revision: str
    commit: CommitFacts | None
    change: ObjectChange | None = None
    path: str | None = None  # the object's file (after the change; before it for a removal)
    errors: tuple[str, ...] = ()  # PolicyInvalid: every error, as `patchctl validate` prints it
    rewrite: Rewrite | None = None
    verdict: Verdict | None = None

    @property
    def key(self) -> ObjectKey | None:
        return None if self.change is None else self.change.key

    @property
    def before(self) -> Mapping[str, Any] | None:
        return None if self.change is None else self.change.before

    @property
    def after(self) -> Mapping[str, Any] | None:
        return None if self.change is None else self.change.after

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the store and `patchctl audit --json`."""
        key = self.key
        return {
            "type": str(self.type),
            "revision": self.revision,
            "commit": None if self.commit is None else self.commit.to_dict(),
            "object": None
            if key is None
            else {"kind": key.kind, "tenant": key.tenant, "name": key.name},
            "action": None if self.change is None else str(self.change.action),
            "changeEvent": None if self.change is None else str(self.change.event),
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "errors": list(self.errors),
            "rewrite": None
            if self.rewrite is None
            else {
                "oldTip": self.rewrite.old_tip,
                "newTip": self.rewrite.new_tip,
                "mergeBase": self.rewrite.merge_base,
                "dropped": list(self.rewrite.dropped),
            },
            "verdict": None
            if self.verdict is None
            else {"applied": self.verdict.applied, "reason": self.verdict.reason},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """The inverse of `to_dict`: an event read back from the store (for `filter_rejected`)."""
        obj = data.get("object")
        change = None
        if obj is not None:
            change = ObjectChange(
                key=ObjectKey(obj["kind"], obj["tenant"], obj["name"]),
                action=changes.ChangeAction(data["action"]),
                event=AuditEventType(data["changeEvent"]),
                before=data.get("before"),
                after=data.get("after"),
            )
        rewrite = data.get("rewrite")
        verdict = data.get("verdict")
        return cls(
            type=AuditEventType(data["type"]),
            revision=data["revision"],
            commit=CommitFacts.from_dict(data["commit"]) if data.get("commit") else None,
            change=change,
            path=data.get("path"),
            errors=tuple(data.get("errors", ())),
            rewrite=Rewrite(
                rewrite["oldTip"],
                rewrite["newTip"],
                rewrite["mergeBase"],
                tuple(rewrite["dropped"]),
            )
            if rewrite
            else None,
            verdict=Verdict(verdict["applied"], verdict["reason"]) if verdict else None,
        )


# --- what a tenant's reader may see of the repository's own events ------------------------

# Entries that belong to the repository rather than to a tenant: an invalid commit may touch
# any tenant's files, and its errors, author and message say so; a force-push names commits
# of any tenant. A reader scoped to a tenant (a read token, a tenant's Notification) sees
# their revision, commit id and error count only (docs/security.md 11.3).
REPOSITORY_LEVEL = frozenset({"PolicyInvalid", "HistoryRewritten"})


class WithheldDetails(TypedDict):
    """What is left of a repository-level entry's details for a tenant-scoped reader (the
    keys are the read API's, camelCase)."""

    revision: str | None
    commit: dict[str, str] | None
    errorCount: int  # the JSON key, as the read API spells it


def withheld_details(details: Mapping[str, Any]) -> WithheldDetails:
    """A repository-level entry's stored details (`AuditEvent.to_dict`, or a PolicyInvalid
    alert's `{revision, errors}`) as a tenant-scoped reader gets them: `revision`, `commit`
    (its sha only) and `errorCount`."""
    errors, commit, revision = details.get("errors"), details.get("commit"), details.get("revision")
    sha = commit.get("sha") if isinstance(commit, Mapping) else None
    return {
        "revision": revision if isinstance(revision, str) else None,
        "commit": {"sha": sha} if isinstance(sha, str) and sha else None,
        "errorCount": len(errors) if isinstance(errors, list | tuple) else 0,
    }


def invalid_revision_message(revision: str, error_count: int) -> str:
    """The one line of an invalid revision: the PolicyInvalid alert's message and the subject
    of its notification, whichever of the alert and the audit event is sent (they share a
    key). It names no file: the errors may concern any tenant."""
    return (
        f"{revision} does not validate ({error_count} error(s)); "
        "still enforcing the last valid revision"
    )
