"""The persisted audit trail: the branch's history in the store, judged, read incrementally.

`AuditTrail.sync(now=...)` walks only the commits new since the cursor kept in the store status
(`audit:<branch>`), judges every change to an approving kind against the server's access
policy, and appends one audit row per event in the same transaction that moves the cursor, so
a crash never records an event twice nor skips one. A force-push is recorded as its own
`HistoryRewritten` event (and the changes the rewrite undid), never merged silently. Each
rejected change is recorded as `ApprovalRejected` and raises an `ApprovalRejected` alert once.

The cursor also keeps, per approving object (Approval, Whitelist), the last judged change of
its key: what `accepted` needs to keep rejected approvals away from the planner, even after a
restart. Those verdicts are judged again at every sync, so a changed access policy takes effect
on the objects in force (a newly rejected one is recorded and alerted once). When the trusted
keys change (a key removed, revoked, re-exported) the signatures of those commits are verified
again first, so a verdict never depends on which keys were configured when the controller
first read a commit: a fresh store and an old one agree.

`query(conn, ...)` reads the trail back merged with what the controller did: the jobs issued
for a patch (with the revision they were issued under), their results, and the alerts about it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import git

from controller import errors
from controller.core import access, changes
from controller.core.audit import AuditEvent
from controller.core.changes import AuditEventType, ChangeAction
from controller.core.desired import DesiredState
from controller.core.ids import AlertKey
from controller.kinds import Approval
from controller.kinds.common import tenant_lineage
from controller.kinds.notifications import AlertSeverity, EventType
from controller.runtime.access import AccessPolicy
from controller.sources import git as git_source
from controller.sources import history as git_history
from controller.sources.history import HistoryCache
from controller.sources.policytree import ParseCache
from controller.store import Connection, Store
from controller.store import alerts as alert_store
from controller.store import audit as audit_store
from controller.store import jobs as job_store
from controller.store import status as status_store

STATUS_PREFIX = "audit:"
ACTOR_MAX, ACTION_MAX, OBJECT_MAX, DEDUPE_MAX = 200, 64, 300, 200
GIT_SOURCE, CONTROLLER_SOURCE, JOBS_SOURCE, ALERT_SOURCE = "git", "controller", "jobs", "alert"
JOB_ROWS_READ = 50_000  # jobs read for one `--patch` query (they are summarised, not listed)
NAMES_SHOWN = 5


class AuditUnavailableError(errors.TransientError):
    """The branch history could not be read; the trail stays where it was (transient)."""


# --- the cursor ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the trail of one branch stands, as kept in the store status."""

    branch: str
    tip: str | None = None
    valid_revision: str | None = None
    expired_through: date | None = None
    synced_at: datetime | None = None
    latest: Mapping[str, AuditEvent] = field(default_factory=dict)  # object key -> judged change
    trusted_keys: str | None = None  # digest of the keys `latest` was verified with

    def to_value(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "tip": self.tip,
            "trustedKeys": self.trusted_keys,
            "validRevision": self.valid_revision,
            "expiredThrough": self.expired_through.isoformat() if self.expired_through else None,
            "syncedAt": self.synced_at.isoformat() if self.synced_at else None,
            "latest": {key: event.to_dict() for key, event in sorted(self.latest.items())},
        }

    @classmethod
    def from_value(cls, branch: str, value: Mapping[str, Any] | None) -> Cursor:
        if not value or not value.get("tip"):
            return cls(branch)
        expired = value.get("expiredThrough")
        synced = value.get("syncedAt")
        return cls(
            branch=branch,
            tip=value["tip"],
            valid_revision=value.get("validRevision"),
            expired_through=date.fromisoformat(expired) if expired else None,
            synced_at=datetime.fromisoformat(synced) if synced else None,
            latest={
                key: AuditEvent.from_dict(data) for key, data in value.get("latest", {}).items()
            },
            trusted_keys=value.get("trustedKeys"),
        )


def status_key(branch: str) -> str:
    return f"{STATUS_PREFIX}{branch}"


def read_cursors(conn: Connection) -> dict[str, Cursor]:
    """Every branch's cursor (for freshness: `patchctl audit`, the read API)."""
    found = {}
    for key, entry in status_store.get_status(conn).items():
        if key.startswith(STATUS_PREFIX):
            branch = key.removeprefix(STATUS_PREFIX)
            found[branch] = Cursor.from_value(branch, entry["value"])
    return found


# --- one sync --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sync:
    """What one sync did, and the verdicts the planner's input is filtered with."""

    branch: str
    tip: str
    recorded: int
    commits_read: int
    rewritten: bool
    rejected: tuple[AuditEvent, ...]  # ApprovalRejected events recorded by this sync
    latest: tuple[AuditEvent, ...]  # the last judged change of every approving object
    synced_at: datetime | None


class AuditTrail:
    """The audit trail of one policy source in one store; keeps the walk's cache between syncs."""

    def __init__(
        self, *, store: Store, repo: str, branch: str, state_dir: Path, access: AccessPolicy
    ) -> None:
        """`branch`: the one branch whose history is recorded; never the checked-out one, so
        the trail cannot mix in another branch's commits."""
        self.store = store
        self.repo_spec = repo
        self.branch = branch
        self.state_dir = state_dir
        self.access = access
        self._cache: HistoryCache | None = None
        self.parsed = ParseCache()  # shared with the reconcile's loader: one parse per file

    def sync(self, *, now: datetime, fetch: bool = False, tip: str | None = None) -> Sync:
        """Record the commits new since the cursor; AuditUnavailableError when git fails.

        `tip`: the branch tip the caller resolved (the reconcile's fetch), so the loader and
        the trail read the same commit; None: resolved here.
        """
        try:
            repo = git_source.open_repository(self.repo_spec, state_dir=self.state_dir, fetch=fetch)
        except git_source.SourceError as exc:
            raise AuditUnavailableError(str(exc)) from None
        branch = self.branch
        keys = self.access.trusted.digest()
        with repo:
            with self.store.read() as conn:
                cursor = _read_cursor(conn, branch)
            try:
                walked = self._walk(repo, branch, cursor.tip, tip)
                in_force = cursor.latest
                if cursor.trusted_keys != keys and in_force:
                    in_force = self._reverified(repo, in_force)
            except (git_source.SourceError, git.GitCommandError) as exc:
                self._cache = None
                raise AuditUnavailableError(
                    f"cannot read the history of {branch!r}: {exc}"
                ) from None
        expiries = _expiries(walked, cursor, today=now.date())
        judged = access.judge_events((*walked.events, *expiries), self.access)
        latest, events = _rejudge(in_force, judged, self.access)
        advanced = Cursor(
            branch=branch,
            tip=walked.tip,
            valid_revision=walked.valid_revision,
            expired_through=now.date(),
            synced_at=now,
            latest=latest,
            trusted_keys=keys,
        )
        moved = (
            bool(events)
            or walked.tip != cursor.tip
            or advanced.latest != cursor.latest
            or keys != cursor.trusted_keys
        )
        if not moved:
            return _summary(cursor, walked, (), recorded=0)
        with self.store.write() as conn:
            if _lock_cursor(conn, branch, now=now).tip != cursor.tip:
                # Another process (`patchctl audit`, another replica) recorded these commits.
                self._cache = None
                return _summary(_read_cursor(conn, branch), walked, (), recorded=0)
            _record(conn, events, now=now)
            status_store.set_status(conn, status_key(branch), advanced.to_value(), now=now)
        rejected = tuple(e for e in events if e.type is AuditEventType.APPROVAL_REJECTED)
        return _summary(advanced, walked, rejected, recorded=len(events))

    def _walk(
        self, repo: git.Repo, branch: str, since: str | None, tip: str | None
    ) -> git_history.HistoryWalk:
        cache = self._cache if self._cache is not None and self._cache.sha == since else None
        with self.access.verifier() as verifier:
            walked = git_history.walk(
                repo,
                branch,
                since_sha=since,
                cache=cache,
                verifier=verifier,
                tip=tip,
                parsed=self.parsed,
            )
        self._cache = walked.cache
        return walked

    def _reverified(
        self, repo: git.Repo, latest: Mapping[str, AuditEvent]
    ) -> dict[str, AuditEvent]:
        """`latest` with each commit's signature verified against today's trusted keys."""
        shas = [e.commit.sha for e in latest.values() if e.commit is not None]
        with self.access.verifier() as verifier:
            found = verifier.verify(repo, shas)
        fresh: dict[str, AuditEvent] = {}
        for key, event in latest.items():
            commit = event.commit
            if commit is not None and commit.sha in found:
                commit = dataclasses.replace(commit, signature=found[commit.sha])
                event = dataclasses.replace(event, commit=commit)  # noqa: PLW2901
            fresh[key] = event
        return fresh

    def stored(self) -> tuple[AuditEvent, ...] | None:
        """The verdicts recorded by the last sync (None: the trail was never synced)."""
        with self.store.read() as conn:
            cursors = read_cursors(conn)
        cursor = cursors.get(self.branch)
        return None if cursor is None or cursor.tip is None else tuple(cursor.latest.values())


def _summary(
    cursor: Cursor,
    walked: git_history.HistoryWalk,
    rejected: tuple[AuditEvent, ...],
    *,
    recorded: int,
) -> Sync:
    return Sync(
        branch=cursor.branch,
        tip=walked.tip,
        recorded=recorded,
        commits_read=walked.commits_read,
        rewritten=any(e.type is AuditEventType.HISTORY_REWRITTEN for e in walked.events),
        rejected=rejected,
        latest=tuple(cursor.latest.values()),
        synced_at=cursor.synced_at,
    )


def _read_cursor(conn: Connection, branch: str) -> Cursor:
    return Cursor.from_value(branch, status_store.get_value(conn, status_key(branch)))


def _lock_cursor(conn: Connection, branch: str, *, now: datetime) -> Cursor:
    """The cursor, locked until the transaction ends (SQLite: its writers are serialised)."""
    return Cursor.from_value(branch, status_store.lock_value(conn, status_key(branch), now=now))


def _expiries(
    walked: git_history.HistoryWalk, cursor: Cursor, *, today: date
) -> tuple[AuditEvent, ...]:
    """`ApprovalExpired` for every approval in force whose expiry day came since the last sync."""
    state = walked.state()
    if state is None or walked.valid_revision is None:
        return ()
    found = changes.detect_expired(
        state.of_kind(Approval), since=cursor.expired_through, today=today
    )
    return tuple(
        AuditEvent(
            AuditEventType.APPROVAL_EXPIRED,
            walked.valid_revision,
            None,
            expiry.change,
            state.origins[expiry.change.key].path if expiry.change.key in state.origins else None,
        )
        for expiry in found
    )


def _rejudge(
    latest: Mapping[str, AuditEvent], events: Sequence[AuditEvent], policy: AccessPolicy
) -> tuple[dict[str, AuditEvent], list[AuditEvent]]:
    """The last judged change per approving object after `events`, judged by today's policy,
    and the events to record: `events`, plus an `ApprovalRejected` for each object in force
    that the current policy rejects where it was applied before."""
    current: dict[str, AuditEvent] = {}
    recorded = list(events)
    changed_now = {str(event.key) for event in events if event.verdict is not None}
    for event in access.judge_events(latest.values(), policy):
        key = str(event.key)
        if event.type is AuditEventType.APPROVAL_REJECTED:
            before = latest[key].verdict
            if key not in changed_now and (before is None or before.applied):
                recorded.append(event)
            continue
        current[key] = event
    for event in events:
        if event.change is None or event.verdict is None:
            continue
        if event.type is AuditEventType.APPROVAL_REJECTED:
            continue
        if event.change.action is ChangeAction.REMOVED:
            current.pop(str(event.key), None)
        else:
            current[str(event.key)] = event
    return current, recorded


def _record(conn: Connection, events: Iterable[AuditEvent], *, now: datetime) -> None:
    """One audit row per event, and an `ApprovalRejected` alert (once) per rejection."""
    audit_store.add_rows(conn, [_row(event, now=now) for event in events])
    for event in events:
        if event.type is AuditEventType.APPROVAL_REJECTED:
            alert_store.add_alert(conn, _rejection_alert(event), now=now)


def _row(event: AuditEvent, *, now: datetime) -> dict[str, Any]:
    commit = event.commit
    key = event.key
    return {
        "at": commit.committed_at if commit is not None else now,
        "tenant": key.owner if key is not None else None,  # who may read the row
        "actor": _actor(event)[:ACTOR_MAX],
        "action": str(event.type)[:ACTION_MAX],
        "object": str(key)[:OBJECT_MAX] if key is not None else "",
        "revision": event.revision,
        "details": {**event.to_dict(), "recordedAt": now.isoformat()},
    }


def _actor(event: AuditEvent) -> str:
    if event.commit is not None:
        return event.commit.author.email
    if event.type is AuditEventType.APPROVAL_EXPIRED:
        return "calendar"
    return "force-push"  # a rewrite, and what it undid: nobody committed it


def _rejection_alert(event: AuditEvent) -> alert_store.NewAlert:
    what = event.commit.sha if event.commit is not None else event.revision
    dedupe = AlertKey.of(EventType.APPROVAL_REJECTED, str(what), str(event.key)).format()
    if len(dedupe) > DEDUPE_MAX:
        digest = hashlib.sha256(dedupe.encode()).hexdigest()
        dedupe = AlertKey.of(EventType.APPROVAL_REJECTED, digest).format()
    delta = changes.patch_delta(event.change) if event.change is not None else None
    reason = event.verdict.reason if event.verdict is not None else "rejected"
    return alert_store.NewAlert(
        kind=EventType.APPROVAL_REJECTED.value,
        severity=AlertSeverity.WARNING.value,
        message=f"{event.key} was not applied: {reason}",
        tenant=event.key.owner if event.key is not None else None,  # who may read it
        details={
            "object": str(event.key),
            "revision": event.revision,
            "commit": event.commit.sha if event.commit is not None else None,
            "patches": sorted(delta.patches) if delta is not None else [],
            "reason": reason,
        },
        dedupe_key=dedupe,
    )


# --- keeping rejected approvals from the planner ---------------------------------------------


def accepted(
    desired: DesiredState, latest: Sequence[AuditEvent] | None, policy: AccessPolicy
) -> DesiredState:
    """The DesiredState the planner may act on under an enforced access policy.

    Fails closed: an approving object no judged change vouches for (the trail could not be
    read, or it is behind the desired revision) is left out, like a rejected one. Without an
    access policy the state is returned as it is. Purely computational.
    """
    if not policy.enforced:
        return desired
    judged = {event.key for event in latest or () if event.verdict is not None}
    unvouched = [
        obj for obj in desired.objects if obj.KIND in policy.guarded_kinds and obj.key not in judged
    ]
    if unvouched:
        keep = [obj for obj in desired.objects if obj not in unvouched]
        desired = DesiredState(
            revision=desired.revision, objects=tuple(keep), origins=desired.origins
        )
    return access.filter_rejected(desired, latest or ())


def withheld(desired: DesiredState, planned: DesiredState) -> tuple[str, ...]:
    """The keys of the objects `accepted` left out."""
    kept = {obj.key for obj in planned.objects}
    return tuple(str(obj.key) for obj in desired.objects if obj.key not in kept)


# --- reading the trail back ------------------------------------------------------------------


def query(
    conn: Connection,
    *,
    scope: str | None,
    since: datetime | None = None,
    patch: str | None = None,
    limit: int = 500,
    lineage: bool = False,
) -> list[dict[str, Any]]:
    """The trail, oldest first (the newest `limit` entries), visible to `scope` (None: all).

    Policy changes from git and the controller's own audit rows (jobs issued, with the revision
    they were issued under); with `patch`, only what concerns that patch, merged with the jobs
    that carried it (summarised per revision and state, with their results) and its alerts.
    `lineage` adds the policy changes of the scope's partner, which apply to it too (for the
    operator's command line; read tokens see their own scope only).
    """
    partners = tenant_lineage(scope) if lineage and scope is not None else ()
    entries = _audit_entries(
        conn, scope=scope, lineage=partners, since=since, patch=patch, limit=limit
    )
    if patch is not None:
        entries += _job_entries(conn, scope=scope, since=since, patch=patch)
        entries += _alert_entries(conn, scope=scope, since=since, patch=patch, limit=limit)
    entries.sort(key=lambda entry: (entry["at"], entry["order"]))
    for entry in entries:
        del entry["order"]
    return entries[-limit:]


def _audit_entries(
    conn: Connection,
    *,
    scope: str | None,
    lineage: Collection[str],
    since: datetime | None,
    patch: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = audit_store.events_newest_first(
        conn,
        scope=scope,
        lineage=lineage,
        since=since,
        mentioning=patch,
        limit=limit if patch is None else None,  # with a patch, rows are checked one by one
    )
    entries = []
    for row in rows:
        entry = _audit_entry(row)
        if patch is None or patch in entry["patches"]:
            entries.append(entry)
        if len(entries) >= limit:
            break
    return entries


def _audit_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    details = row["details"] or {}
    from_git = "changeEvent" in details and "revision" in details
    patches: list[str] = []
    summary = ""
    if from_git:
        event = AuditEvent.from_dict(details)
        delta = changes.patch_delta(event.change) if event.change is not None else None
        patches = sorted(delta.patches) if delta is not None else []
        summary = _git_summary(event, delta)
    else:
        patches = sorted(p for p in details.get("patches", ()) if isinstance(p, str))
        summary = _controller_summary(row["action"], details)
    return {
        "at": row["at"],
        "order": (0, row["id"]),
        "source": GIT_SOURCE if from_git else CONTROLLER_SOURCE,
        "type": row["action"],
        "tenant": row["tenant"],
        "actor": row["actor"],
        "object": row["object"] or None,
        "revision": row["revision"],
        "patches": patches,
        "summary": summary,
        "details": details,
    }


def _git_summary(event: AuditEvent, delta: changes.PatchDelta | None) -> str:
    parts = []
    commit = event.commit
    if commit is not None:
        landed = not event.revision.endswith(commit.sha)  # invalid commits came between
        where = [commit.sha[:12]] if landed else []
        where += [commit.pull_request.ref] if commit.pull_request else []
        parts.append(" ".join([*where, f"by {commit.author.email}"]))
        parts.append(f"signature {commit.signature.status}")
    if delta is not None and (delta.granted or delta.revoked):
        granted = f"grants {', '.join(sorted(delta.granted))}" if delta.granted else ""
        revoked = f"revokes {', '.join(sorted(delta.revoked))}" if delta.revoked else ""
        parts.append(" ".join(p for p in (granted, revoked) if p))
    if event.rewrite is not None:
        parts.append(
            f"{event.rewrite.old_tip[:12]} -> {event.rewrite.new_tip[:12]}, "
            f"{len(event.rewrite.dropped)} commit(s) dropped"
        )
    if event.errors:
        parts.append(f"{len(event.errors)} error(s): {event.errors[0]}")
    if event.verdict is not None and not event.verdict.applied:
        parts.append(f"rejected: {event.verdict.reason}")
    return "; ".join(parts)


def _controller_summary(action: str, details: Mapping[str, Any]) -> str:
    if isinstance(details.get("summary"), str):  # an operator's action says what it did
        return str(details["summary"])
    if "jobs" in details and "devices" in details:
        windows = ", ".join(details.get("windows", ()))
        during = f" in {windows}" if windows else ""
        return f"{details['jobs']} job(s) to {details['devices']} device(s){during}"
    return action


def _job_entries(
    conn: Connection, *, scope: str | None, since: datetime | None, patch: str
) -> list[dict[str, Any]]:
    """The jobs that carried `patch`, one entry per (tenant, revision, kind, state)."""
    rows = job_store.jobs_carrying(conn, patch, scope=scope, since=since, limit=JOB_ROWS_READ)
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["tenant"], row["revision"], row["kind"], row["state"])].append(row)
    return [
        _job_entry(tenant, revision, kind, state, rows, patch)
        for (tenant, revision, kind, state), rows in groups.items()
    ]


def _job_entry(
    tenant: str, revision: str, kind: str, state: str, rows: list[Mapping[str, Any]], patch: str
) -> dict[str, Any]:
    results: dict[str, int] = defaultdict(int)
    reasons: list[str] = []
    for row in rows:
        stored = row["results"] if isinstance(row["results"], dict) else {}
        found = stored.get(patch)
        outcome: dict[str, Any] = found if isinstance(found, dict) else {}
        result = outcome.get("result")
        if result:
            results[result] += 1
        if outcome.get("reason") and len(reasons) < NAMES_SHOWN:
            reasons.append(f"{row['name']}: {outcome['reason']}")
    names = sorted({row["name"] for row in rows})
    at = max(row["finished_at"] or row["updated_at"] for row in rows)
    shown = ", ".join(names[:NAMES_SHOWN]) + (" ..." if len(names) > NAMES_SHOWN else "")
    outcome_text = ", ".join(f"{n} {result}" for result, n in sorted(results.items()))
    summary = f"{len(rows)} job(s) on {shown}" + (f"; {outcome_text}" if outcome_text else "")
    if reasons:
        summary += f"; {'; '.join(reasons)}"
    return {
        "at": at,
        "order": (1, 0),
        "source": JOBS_SOURCE,
        "type": f"{kind.capitalize()}Jobs{state.capitalize()}",
        "tenant": tenant,
        "actor": "controller",
        "object": None,
        "revision": revision,
        "patches": [patch],
        "summary": summary,
        "details": {
            "kind": kind,
            "state": state,
            "jobs": len(rows),
            "devices": names,
            "results": dict(results),
            "reasons": reasons,
            "firstIssuedAt": min(row["created_at"] for row in rows).isoformat(),
        },
    }


def _alert_entries(
    conn: Connection, *, scope: str | None, since: datetime | None, patch: str, limit: int
) -> list[dict[str, Any]]:
    entries = []
    for row in alert_store.alerts_mentioning(conn, patch, scope=scope, since=since, limit=limit):
        details = row["details"] or {}
        entries.append(
            {
                "at": row["created_at"],
                "order": (2, row["id"]),
                "source": ALERT_SOURCE,
                "type": row["kind"],
                "tenant": row["tenant"],
                "actor": "controller",
                "object": row["device_id"],
                "revision": details.get("revision"),
                "patches": [patch],
                "summary": f"{row['severity']}: {row['message']}",
                "details": details,
            }
        )
    return entries


def midnight(day: date) -> datetime:
    """The first instant of a UTC day (for `--since DATE`)."""
    return datetime.combine(day, time(), UTC)
