"""One reconcile: fetch source → load policy → audit → observe devices → plan → apply → status.

Each step owns its part of the status; the status is saved in `finally`, whatever happened. A
revision that does not validate never replaces the last valid one: the controller keeps enforcing
`lastAppliedRevision`, records `lastAttemptedRevision` with every error, and raises PolicyInvalid
once per bad revision.

The audit step records the commits new since the last pass in the audit trail and judges every
approving change against the server's access policy; approvals it rejects are left out of the
desired state before planning, so they approve nothing (`controller.runtime.audit`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from controller import errors
from controller.core.audit import invalid_revision_message
from controller.core.conditions import (
    ConditionStatus,
    ConditionType,
    Reason,
    ReconcileResult,
    reason_for,
)
from controller.core.desired import DesiredState
from controller.core.ids import AlertKey
from controller.core.incremental import IncrementalPlanner
from controller.core.observed import DeviceView
from controller.core.plan import Plan
from controller.core.revisions import Revision
from controller.kinds.notifications import AlertSeverity, EventType
from controller.runtime import apply, audit, observe
from controller.runtime import status as runtime_status
from controller.runtime.access import AccessPolicy
from controller.sources import gcpause, loading
from controller.sources import git as git_source
from controller.sources.documents import Problem
from controller.sources.history import AuditEvent
from controller.store import Connection, Store, changes, runs
from controller.store import alerts as alert_store
from controller.store import status as status_store

POLICY_INVALID = EventType.POLICY_INVALID.value  # the alert kind, and its dedupe keys' prefix

log = structlog.get_logger("patchctl.reconcile")

HISTORY_KEPT = 20
DEFAULT_RESYNC = timedelta(minutes=10)  # the full pass's period (`[service] resync`)
CHANGES_KEPT = timedelta(hours=1)  # change rows older than this (and 2 resyncs) are pruned


@dataclass(frozen=True, slots=True)
class PolicySource:
    """Where the desired state comes from: a repository (path or URL) and the one branch that
    is enforced, read from git objects (never the checked-out branch or the working tree)."""

    repo: str
    branch: str
    state_dir: Path


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one reconcile, as status and `patchctl reconcile --json` show it."""

    result: ReconcileResult
    applied_revision: str | None
    attempted_revision: str | None
    started_at: datetime
    duration_ms: int
    counts: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    plan: Plan | None = field(default=None, compare=False, repr=False)
    verified: Verification | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "lastAppliedRevision": self.applied_revision,
            "lastAttemptedRevision": self.attempted_revision,
            "startedAt": self.started_at.isoformat(),
            "durationMs": self.duration_ms,
            "counts": self.counts,
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """What the audit step found: the `SourceVerified` condition's status, reason and message."""

    status: ConditionStatus
    reason: Reason
    message: str
    # ApprovalRejected: per object left out, `Approval/acme/x: <the verdict's reason>`
    reasons: tuple[str, ...] = ()


class SourceUnavailableError(errors.TransientError):
    """The repository could not be read; retried on the next trigger (transient)."""


class Reconciler:
    """Runs reconciles against one store and one policy source; keeps the last valid policy."""

    def __init__(
        self,
        *,
        store: Store,
        source: PolicySource,
        clock: Callable[[], datetime],
        access: AccessPolicy | None = None,
        resync: timedelta = DEFAULT_RESYNC,
    ) -> None:
        """`access` None: no access policy, every approval applies (the trail is kept anyway).
        `resync`: how often a pass reads the whole store and plans every device (the other
        passes read and plan what changed), checking that the incremental state did not drift."""
        self.store = store
        self.source = source
        self.clock = clock
        self.access = access if access is not None else AccessPolicy.open()
        self.trail = audit.AuditTrail(
            store=store,
            repo=source.repo,
            branch=source.branch,
            state_dir=source.state_dir,
            access=self.access,
        )
        self.planner = IncrementalPlanner()
        self.observer = observe.Observer()
        self.resync = resync
        self.drift_total = 0  # resyncs that found the incremental state differing
        self._last_full: datetime | None = None  # controller time of the last full pass
        self.last_valid: DesiredState | None = None
        self._failed_revision: str | None = None
        self._tip: str | None = None  # resolved once per pass, by the fetch, for the trail too
        # whether PolicyInvalid alerts left open by an earlier process were looked for
        self._invalid_checked = False
        # status key → (digest, time written) of the plan summary values this reconciler stored
        self._plan_written: dict[str, tuple[str, datetime]] = {}
        self.pending = PendingShards()  # the pending approvals by device, kept between passes

    def reconcile(self) -> Outcome:
        """One pass. Never raises for a bad commit or an unreachable repository.

        The pass runs with Python's cyclic garbage collector paused (`gcpause`): a first pass
        at 100,000 devices allocates millions of objects that live on, and the collector
        walked the growing heap ten times (2.1 s of 9 s, issue 14). After each pass, what it
        keeps (the planner's views and plans of every device, an approval's jobs) is frozen out
        of the collector's later runs: a collection of the oldest generation walked all of it
        (0.3 s at 100,000 devices), and the first young collection after an incremental pass
        walked what that pass made (80 ms after an approval's 10,000 jobs), triggered by
        whatever allocated next and holding the interpreter for the report threads too.
        Frozen objects are still freed by reference counting when a later pass replaces them;
        the next full pass unfreezes them (`observe_step`), so nothing frozen outlives it, and
        the few objects in reference cycles among them (a few hundred a pass, about 10,000 in
        a first pass at 100,000 devices) are collected after it. No collection comes before
        the freeze: it walks everything (0.26 s at 100,000 devices)."""
        with gcpause.paused():
            try:
                return self._pass()
            finally:
                gcpause.freeze()  # before the collector runs again: it would walk them first

    def _pass(self) -> Outcome:
        now = self.clock()
        started = time.perf_counter()
        attempted: str | None = None
        errors: tuple[str, ...] = ()
        result = ReconcileResult.APPLIED
        counts: dict[str, int] = {}
        the_plan: Plan | None = None
        verified: Verification | None = None
        try:
            attempted, loaded = self.fetch_and_load()
            if loaded.state is None:
                result, errors = (
                    ReconcileResult.POLICY_INVALID,
                    tuple(str(p) for p in loaded.errors),
                )
                self._record_invalid(attempted, loaded.errors, now=now)
            else:
                self.last_valid = loaded.state
                if self._failed_revision is not None or not self._invalid_checked:
                    self._resolve_invalid(keep=None, now=now)
                    self._failed_revision, self._invalid_checked = None, True
            synced, audit_error = self.audit_step(now=now)
            desired = self.last_valid or self._restore_last_applied()
            if desired is None:
                if result is ReconcileResult.APPLIED:
                    result = ReconcileResult.NO_VALID_REVISION
            else:
                planned, verified = self.approved_only(desired, synced, audit_error)
                the_plan, counts = self.plan_and_apply(planned, now=now)
                counts["auditEvents"] = synced.recorded if synced else 0
        except SourceUnavailableError as exc:
            result, errors = ReconcileResult.SOURCE_ERROR, (str(exc),)
            # after a restart with the repository unreachable: the last applied revision from
            # the local mirror, so it stays enforced and `lastAppliedRevision` is kept
            desired = self.last_valid or self._restore_last_applied()
            if desired is not None:
                planned, verified = self.approved_only(desired, None, str(exc))
                the_plan, counts = self.plan_and_apply(planned, now=now)
        finally:
            duration_ms = int((time.perf_counter() - started) * 1000)
            outcome = Outcome(
                result=result,
                applied_revision=self.last_valid.revision if self.last_valid else None,
                attempted_revision=attempted,
                started_at=now,
                duration_ms=duration_ms,
                counts=counts,
                errors=errors,
                plan=the_plan,
                verified=verified,
            )
            self._save_status(outcome)
        log.info(
            "reconcile",
            result=outcome.result,
            revision=outcome.applied_revision,
            attempted=outcome.attempted_revision,
            duration_ms=outcome.duration_ms,
            **outcome.counts,
        )
        return outcome

    # --- steps ----------------------------------------------------------------------------

    def fetch_and_load(self) -> tuple[str, loading.LoadResult]:
        """Fetch the branch tip and load it; the same valid revision is not parsed twice.

        The tip is resolved here once per pass and handed to the audit step; files are parsed
        through the trail's cache, so the walk finds the tip's files already parsed.
        """
        self._tip = None
        try:
            repo = git_source.open_repository(self.source.repo, state_dir=self.source.state_dir)
        except git_source.SourceError as exc:
            raise SourceUnavailableError(str(exc)) from None
        with repo:
            try:
                revision = git_source.resolve(repo, branch=self.source.branch)
            except git_source.SourceError as exc:
                raise SourceUnavailableError(str(exc)) from None
            self._tip = revision.sha
            text = str(revision)
            if self.last_valid is not None and self.last_valid.revision == text:
                return text, loading.LoadResult(self.last_valid, ())
            files = git_source.read_commit(repo, revision.sha)
        return text, loading.load_policy(files, revision=text, parse=self.trail.parsed.parse)

    def audit_step(self, *, now: datetime) -> tuple[audit.Sync | None, str | None]:
        """Record the new commits in the audit trail; a failure is logged, never raised."""
        try:
            synced = self.trail.sync(now=now, tip=self._tip)
        except audit.AuditUnavailableError as exc:
            log.warning("audit trail not synced", error=str(exc))
            return None, str(exc)
        return synced, None

    def approved_only(
        self, desired: DesiredState, synced: audit.Sync | None, audit_error: str | None
    ) -> tuple[DesiredState, Verification]:
        """The desired state without the approvals the access policy rejected (or cannot vouch
        for), and the SourceVerified condition that says so."""
        if not self.access.enforced:
            return desired, Verification(
                ConditionStatus.UNKNOWN,
                Reason.NOT_CONFIGURED,
                "no access policy (approvers, signatures) is configured",
            )
        latest = synced.latest if synced is not None else self.trail.stored()
        planned = audit.accepted(desired, latest, self.access)
        left_out = audit.withheld(desired, planned)
        if left_out:
            shown = ", ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else "")
            unread = f" (audit trail not read: {audit_error})" if audit_error else ""
            return planned, Verification(
                ConditionStatus.FALSE,
                Reason.APPROVAL_REJECTED,
                f"{len(left_out)} approving object(s) of {desired.revision} not applied: "
                f"{shown}{unread}; see `patchctl audit`",
                _rejection_reasons(left_out, latest),
            )
        if audit_error is not None and synced is None and latest is None:
            return planned, Verification(
                ConditionStatus.UNKNOWN, Reason.AUDIT_UNAVAILABLE, audit_error
            )
        signed = _signed_scopes(self.access)
        return planned, Verification(
            ConditionStatus.TRUE,
            Reason.APPROVALS_VERIFIED,
            f"every approving change in {desired.revision} passed the access policy"
            + (f"; signed commits required for {signed}" if signed else ""),
        )

    def plan_and_apply(
        self, desired: DesiredState, *, now: datetime
    ) -> tuple[Plan, dict[str, int]]:
        # Observe in a read snapshot and plan outside any transaction: agents' reports keep
        # landing while a large fleet is planned (SQLite has one writer). Applying stays safe on
        # a snapshot that has aged: jobs have deterministic ids and are inserted only if new,
        # only jobs the agent has not taken are cancelled or expired, alerts are deduplicated,
        # and the reconciler is the only one issuing jobs. The next pass sees what changed.
        try:
            observation, drift = self.observe_step(now=now)
            observed = observation.observed
            the_plan = self.planner.plan(desired, observed, now=now, changes=observation.changes)
            self.pending.update(the_plan, self.planner.replanned)
            replanned = self._replanned(observation)
            # the planner's own index, not a device → tenant dict of the fleet (~100 MB at
            # a million devices, issue 14 item 7)
            tenants = _Tenants(self.planner.devices)
            with self.store.write() as conn:
                applied = apply.apply_plan(
                    conn,
                    the_plan,
                    tenants=tenants,
                    now=now,
                    replanned=replanned,
                    # the alerts the last plan applied did not hold: it stored the others
                    alerts=self.planner.fresh_alerts,
                )
        except BaseException:
            self.forget()  # none of this pass's alerts may be stored
            raise
        counts = {
            **the_plan.counts(),
            **applied.as_dict(),
            "fullPass": int(observation.changes.everything),
            "devicesRead": observation.devices_read,
            "ledgerJobs": len(observed.jobs),  # the job ledger planned from (`JOB_HORIZON`)
            "devicesPlanned": self.planner.last.planned,
            "drift": drift,
        }
        return the_plan, counts

    def forget(self) -> None:
        """Drop what this reconciler remembers of the store between passes (after an error, a
        change of leader, a drift): the next pass reads everything and sends the store every
        alert of its plan, so that one the store lost is raised again."""
        self.observer.forget()
        self.planner.forget(alerts=True)

    def observe_step(self, *, now: datetime) -> tuple[observe.Observation, int]:
        """The pass's observed state: what changed since the last pass, or everything on the
        first pass, every `resync` and after an error (`Changes.EVERYTHING`). A resync also
        reads the incremental state and counts a drift (logged as an error) when the two
        differ; answers the observation and the number of devices that drifted."""
        due = self._last_full is None or now - self._last_full >= self.resync
        with self.store.read() as conn:
            if self.observer.primed and not due:
                return self.observer.incremental(conn, now=now), 0
            gcpause.unfreeze()  # what the full pass replaces may be collected again
            self.planner.forget()  # it plans everything: the previous plans go first
            kept = self.observer.incremental(conn, now=now) if self.observer.primed else None
            found = self.observer.full(conn, now=now)
        self._last_full = now
        with self.store.write() as conn:
            changes.prune(conn, before=now - max(CHANGES_KEPT, 2 * self.resync))
        if kept is None:
            return found, 0
        drifted = observe.differing_devices(kept.observed, found.observed, now=now)
        if kept.observed.catalogue != found.observed.catalogue:
            drifted.add("(catalogue)")
        if drifted:
            self.drift_total += 1
            # the store changed behind this reconciler's back (a restore, a failover, a hand
            # edit): the alerts it remembers as stored may be gone too
            self.planner.forget(alerts=True)
            log.error(
                "incremental observed state drifted from the store",
                devices=len(drifted),
                sample=sorted(drifted)[:10],
            )
        return found, len(drifted)

    def _replanned(self, observation: observe.Observation) -> set[str] | None:
        """The devices whose compliance may have changed in this pass: those the planner
        planned afresh to different compliance records, and those whose rows changed (a
        retired device's rows go); None when that may be any device (a full plan). An
        approval commit re-plans a tenth of the fleet and changes none of its compliance:
        no stored row is read back for them (issue 14)."""
        changed = self.planner.compliance_changed
        if changed is None:
            return None
        return set(changed | observation.changes.devices)

    def _record_invalid(
        self, revision: str, problems: tuple[Problem, ...], *, now: datetime
    ) -> None:
        if revision == self._failed_revision:
            return
        self._failed_revision = revision
        self._resolve_invalid(keep=_invalid_key(revision), now=now)
        with self.store.write() as conn:
            alert_store.add_alert(
                conn,
                alert_store.NewAlert(
                    kind=POLICY_INVALID,
                    severity=AlertSeverity.CRITICAL.value,
                    message=invalid_revision_message(revision, len(problems)),
                    details={"revision": revision, "errors": [str(p) for p in problems[:50]]},
                    dedupe_key=_invalid_key(revision),
                ),
                now=now,
            )

    def _resolve_invalid(self, *, keep: str | None, now: datetime) -> None:
        """Resolve the PolicyInvalid alerts of revisions no longer at the branch head: all of
        them once the head validates (`keep` None), the older ones when another bad revision
        replaced them. Nothing is written when none is open (the common pass)."""
        with self.store.read() as conn:
            open_keys = alert_store.open_alert_keys(conn, kinds=[POLICY_INVALID])
        stale = [alert_id for key, alert_id in open_keys.items() if key != keep]
        if stale:
            with self.store.write() as conn:
                alert_store.resolve_alerts(conn, stale, now=now)

    def enforced_state(self) -> DesiredState | None:
        """The policy this reconciler enforces: the last valid revision it loaded, else the
        last applied one read back from git (after a restart); None before any valid one.
        Reads git at most once (blocking: call it off the event loop)."""
        return self.last_valid or self._restore_last_applied()

    def _restore_last_applied(self) -> DesiredState | None:
        """After a restart with a broken head: load the last applied revision from git."""
        with self.store.read() as conn:
            source = status_store.get_status(conn).get("source", {}).get("value") or {}
        revision = source.get("lastAppliedRevision")
        parsed = Revision.parse(revision)
        if parsed is None:
            return None
        try:
            with git_source.open_repository(
                self.source.repo, state_dir=self.source.state_dir, fetch=False
            ) as repo:
                files = git_source.read_commit(repo, parsed.sha)
            loaded = loading.load_policy(files, revision=revision)
        except (git_source.SourceError, ValueError):
            return None
        self.last_valid = loaded.state
        return loaded.state

    def _save_status(self, outcome: Outcome) -> None:
        now = outcome.started_at
        # Encoded before the write transaction: encoding under SQLite's one write lock held
        # agents' reports back for over 100 ms a pass (issue 14). Only the shards whose
        # devices' approvals changed, and those this reconciler has not written yet: the
        # whole map is tens of MB of JSON at 100,000 devices.
        summary = (
            {
                "plan": _encoded(plan_summary(outcome.plan)),
                **{
                    key: _encoded(self.pending.value(key))
                    for key in self.pending.dirty
                    | (self.pending.shards.keys() - self._plan_written.keys())
                },
            }
            if outcome.plan is not None
            else {}
        )
        with self.store.write() as conn:
            source = _source_status(outcome)
            if source["lastAppliedRevision"] is None:
                # nothing could be loaded in this pass (a fresh process, the repository away):
                # the revision applied before stays the last applied one, for status, /readyz
                # and the dashboard alike
                before = status_store.get_status(conn).get("source", {}).get("value")
                kept = before.get("lastAppliedRevision") if isinstance(before, dict) else None
                source["lastAppliedRevision"] = kept if isinstance(kept, str) else None
            status_store.set_status(conn, "source", source, now=now)
            status_store.set_status(conn, "conditions", conditions(outcome), now=now)
            self._save_plan_summary(conn, summary, now=now)
            runs.record_reconcile_run(
                conn,
                started_at=now,
                finished_at=now + timedelta(milliseconds=outcome.duration_ms),
                revision=outcome.applied_revision,
                result=outcome.result,
                counts=outcome.counts,
                message="; ".join(outcome.errors[:5]),
            )

    def _save_plan_summary(
        self, conn: Connection, values: dict[str, tuple[str, str]], *, now: datetime
    ) -> None:
        """Write the plan summary's values (key → JSON text, digest) but those this reconciler
        wrote last with the same digest and nobody rewrote since (the stored time says): a
        pass rewrites only the pending-approval shards of the devices whose approvals changed."""
        written = self._plan_written
        stored = status_store.updated_times(conn, written.keys()) if written else {}
        for key, (_, at) in list(written.items()):
            if key not in values and stored.get(key) != at:  # rewritten by someone else since
                values[key] = _encoded(self.pending.value(key))
        changed = {
            key: text
            for key, (text, digest) in values.items()
            if written.get(key) != (digest, stored.get(key))
        }
        status_store.set_encoded(conn, changed, now=now)
        for key in changed:
            written[key] = (values[key][1], now)
        self.pending.dirty.clear()  # written with the transaction (a failed one raises first)


def _invalid_key(revision: str) -> str:
    """The dedupe key of the PolicyInvalid alert of `revision` (notify.events reads it too)."""
    return AlertKey.of(EventType.POLICY_INVALID, revision).format()


def _rejection_reasons(
    left_out: tuple[str, ...], latest: tuple[AuditEvent, ...] | None
) -> tuple[str, ...]:
    """Per object left out, the reason of the last verdict that refused it (else: no judged
    change vouches for it)."""
    refused = {
        str(event.key): event.verdict.reason
        for event in latest or ()
        if event.verdict is not None and not event.verdict.applied and event.key is not None
    }
    return tuple(
        f"{key}: {refused.get(key, 'no accepted change vouches for it')}" for key in left_out
    )


def _signed_scopes(policy: AccessPolicy) -> str:
    if policy.require_signed:
        return "every tenant"
    return ", ".join(sorted(s for s, rule in policy.tenants.items() if rule.require_signed))


def _encoded(value: Any) -> tuple[str, str]:
    """`value` as JSON text, and a digest of that text."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text, hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class PendingShards:
    """The pending approvals by device of the latest plan, in the status shards the reconciler
    stores (`runtime.status.pending_shard`, read back by `runtime.status.plan_value`), kept
    between passes: a pass looks only at the devices the planner re-planned, so an approval
    commit at 100,000 devices encodes the shards of the devices it reached, not the fleet's
    tens of MB of JSON (issue 14). Per device, so that tenant-scoped views (the dashboard)
    count only their own devices.

    `shards`: shard key → {device id → (patch id, ...)} for every shard (all of them, so a shard
    whose devices have none left is emptied); `dirty`: the keys changed since they were last
    written (`Reconciler._save_status` clears it)."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, tuple[str, ...]]] = {
            f"{runtime_status.PENDING_SHARD_PREFIX}{n:02x}": {}
            for n in range(runtime_status.PENDING_SHARDS)
        }
        self.dirty: set[str] = set()
        self._shard_of: dict[str, str] = {}  # device id → its shard key (a digest each)

    def value(self, key: str) -> Any:
        """What status key `key` holds: a shard of the pending approvals by device, as
        `runtime.status.pending_shard_value` stores it."""
        return runtime_status.pending_shard_value(self.shards[key])

    def update(self, the_plan: Plan, replanned: frozenset[str] | None) -> None:
        """Bring the shards up to `the_plan`, whose devices outside `replanned` (None: all
        of them may have changed) have the plan they had in the plan before."""
        present = {device.device_id for device in the_plan.devices}
        for gone in self._shard_of.keys() - present:
            key = self._shard_of.pop(gone)
            if self.shards[key].pop(gone, None) is not None:
                self.dirty.add(key)
        shard_of = self._shard_of
        for device in the_plan.devices:
            device_id = device.device_id
            if device_id not in shard_of:
                shard_of[device_id] = runtime_status.pending_shard(device_id)
            elif replanned is not None and device_id not in replanned:
                continue
            key = shard_of[device_id]
            shard = self.shards[key]
            # the summary's tuple as it is (shared between devices; JSON writes it as a list)
            pending = device.pending_approval
            if shard.get(device_id, ()) != pending:
                if pending:
                    shard[device_id] = pending
                else:
                    del shard[device_id]
                self.dirty.add(key)


class _Tenants(Mapping[str, str]):
    """Device id → tenant path, read from a device index (`IncrementalPlanner.devices`)."""

    def __init__(self, devices: Mapping[str, DeviceView]) -> None:
        self._devices = devices

    def __getitem__(self, device_id: str) -> str:
        return self._devices[device_id].tenant

    def __iter__(self) -> Iterator[str]:
        return iter(self._devices)

    def __len__(self) -> int:
        return len(self._devices)


def plan_summary(the_plan: Plan) -> dict[str, Any]:
    """What status shows of the last plan under `plan`: pending approvals and each window's
    next opening (the pending approvals by device are in shards: `PendingShards`)."""
    next_windows = {}
    for key, state in sorted(the_plan.windows.items()):
        occurrence = state.current or state.upcoming
        next_windows[key] = {
            "open": state.current is not None,
            "start": occurrence.start.isoformat() if occurrence else None,
            "end": occurrence.end.isoformat() if occurrence else None,
        }
    return {
        "revision": the_plan.revision,
        "pendingApprovals": the_plan.pending_approvals,
        "installable": the_plan.installable,
        "nextWindows": next_windows,
    }


def _source_status(outcome: Outcome) -> dict[str, Any]:
    return {
        "lastAppliedRevision": outcome.applied_revision,
        "lastAttemptedRevision": outcome.attempted_revision,
        "errors": list(outcome.errors[:200]),
    }


# The error kind (`controller.errors`) of each failed result: `Stalled` is True for a
# needs-a-human failure (nothing changes until the branch moves), False while retrying.
RESULT_KINDS = {
    ReconcileResult.POLICY_INVALID: errors.Kind.NEEDS_HUMAN,
    ReconcileResult.SOURCE_ERROR: SourceUnavailableError.kind,
}


def conditions(outcome: Outcome) -> list[dict[str, str]]:
    """Flux-style conditions: each with a status, a reason and a message a person can act on."""
    result = ReconcileResult(outcome.result)
    messages = {
        ReconcileResult.APPLIED: f"applied {outcome.applied_revision}",
        ReconcileResult.POLICY_INVALID: (
            f"{outcome.attempted_revision} has {len(outcome.errors)} error(s); enforcing "
            f"{outcome.applied_revision or 'nothing'} until the branch moves"
        ),
        ReconcileResult.SOURCE_ERROR: "; ".join(outcome.errors) or "source unreachable",
        ReconcileResult.NO_VALID_REVISION: "no revision has validated yet",
    }
    reason, message = reason_for(result), messages[result]
    ready = ConditionStatus.of(result is ReconcileResult.APPLIED)
    stalled = ConditionStatus.of(RESULT_KINDS.get(result) is errors.Kind.NEEDS_HUMAN)
    verified = outcome.verified or Verification(
        ConditionStatus.UNKNOWN, Reason.NOT_CONFIGURED, "no commit signature policy is configured"
    )
    return [
        {"type": ConditionType.READY, "status": ready, "reason": reason, "message": message},
        {
            "type": ConditionType.RECONCILING,
            "status": ConditionStatus.FALSE,
            "reason": reason,
            "message": message,
        },
        {"type": ConditionType.STALLED, "status": stalled, "reason": reason, "message": message},
        {
            "type": ConditionType.SOURCE_VERIFIED,
            "status": verified.status,
            "reason": verified.reason,
            "message": verified.message,
        },
    ]
