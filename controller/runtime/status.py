"""Read-side summaries for operators: status widgets and listings over the whole store.

The CLI runs on the controller's machine and sees every tenant; `tenant` narrows a query to a
tenant and its clients.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.core.audit import REPOSITORY_LEVEL, withheld_details
from controller.core.conditions import ConditionType, Reason
from controller.core.observed import JobState, PatchResult, is_online
from controller.kinds.common import tenant_contains
from controller.notify import channel_id
from controller.notify import state as notify_state
from controller.store import Connection, compliance, devices, jobs, leases
from controller.store import alerts as alert_store
from controller.store import runs as run_store
from controller.store import status as status_store

if TYPE_CHECKING:
    from controller.core.desired import DesiredState

PATCH_STATUS_DAYS = 30


def summary(conn: Connection, *, now: datetime, tenant: str | None = None) -> dict[str, Any]:
    """The status widgets: compliance, pending approvals, patch status (30 days), revisions.

    Stored status values are reduced to the shapes the renderers expect (a value of another
    shape, written by another version or damaged, reads as absent), so any stored state renders.
    """
    status = status_store.get_status(conn)
    plan_summary = _mapping(status.get("plan", {}).get("value"))
    pending = plan_summary.get("pendingApprovals")
    return {
        "source": _mapping(status.get("source", {}).get("value")),
        "conditions": _conditions(status.get("conditions", {}).get("value")),
        "compliance": compliance_by_baseline(conn, tenant=tenant),
        "pendingApprovals": pending if _is_count(pending) else 0,
        "nextWindows": _next_windows(plan_summary.get("nextWindows")),
        "patchStatus": patch_status(conn, now=now, tenant=tenant),
        "agents": agents(conn, now=now, tenant=tenant),
        "reconciles": [_run(r) for r in run_store.list_reconcile_runs(conn, limit=10)],
        "leader": leader(conn),
        # the controller host's view: every channel, whatever `tenant` narrows
        "notifications": notification_channels(conn, None),
    }


def notification_channels(conn: Connection, channel_ids: Collection[str] | None) -> list[Any]:
    """The stored state of each notification channel (`notify.delivery.ChannelStatus.as_dict`,
    as `notify.state.StatusWriter` keeps it: delivered, failures since the last success,
    dropped, queued, last error, next attempt), of those of `channel_ids` (None: every one), by
    channel id. A value that is not a mapping is left out."""
    states = notify_state.channel_states(conn)
    return [
        dict(value)
        for channel, value in sorted(states.items())
        if isinstance(value, dict) and (channel_ids is None or channel in channel_ids)
    ]


def scope_channels(desired: DesiredState | None, scope: str) -> set[str]:
    """The channels of the Notifications a tenant scope reads: those of its tenant and its
    clients (a Notification of every tenant is the operator's). None known: no policy yet."""
    if desired is None:
        return set()
    return {
        channel_id(n.spec.channel)
        for n in desired.notifications
        if n.tenant is not None and tenant_contains(scope, n.tenant)
    }


def leader(conn: Connection) -> dict[str, Any] | None:
    """The reconciler lease: which replica leads, under which epoch, until when (None before
    any `serve` ran)."""
    lease = leases.read(conn)
    return lease.as_dict(now=leases.database_now(conn)) if lease is not None else None


def tenant_view(conn: Connection, *, scope: str) -> dict[str, Any]:
    """The controller's own status as a read token of tenant `scope` may see it: the read API's
    `/status` and the dashboard show this and nothing else of the status table.

    Shape: `{source: {lastAppliedRevision, lastAttemptedRevision, errorCount, updatedAt},
    conditions: [{type, status, reason, message}], pendingApprovals: int,
    pendingApprovalsByDevice: {device id: [patch id]}, nextWindows: {"tenant/name": {open,
    start, end}}, catalogue: {version, records}, reconcileRuns: [{startedAt, finishedAt,
    revision, result, durationMs}]}`.

    Built field by field (an allow-list, never a copy of the table) because the table is the
    whole fleet's: pending approvals and windows are kept only for the scope's devices and the
    tenants that apply to it; policy errors, which quote any tenant's files, are only counted
    (`patchctl validate` shows them); run counts and messages stay on the controller host;
    audit cursors, channel, chore and feed entries are left out (the scoped audit, alert and
    feed views have them).
    """
    status = status_store.get_status(conn)
    source = status_value(status, "source")
    plan = plan_value(status)
    pending = _scoped_pending(conn, plan.get("pendingApprovalsByDevice"), scope=scope)
    catalogue = status_value(status, "catalogue")
    return {
        "source": {
            "lastAppliedRevision": source.get("lastAppliedRevision"),
            "lastAttemptedRevision": source.get("lastAttemptedRevision"),
            "errorCount": len(stored_list(source.get("errors"))),
            "updatedAt": iso((status.get("source") or {}).get("updatedAt")),
        },
        "conditions": visible_conditions((status.get("conditions") or {}).get("value")),
        "pendingApprovals": sum(len(patches) for patches in pending.values()),
        "pendingApprovalsByDevice": pending,
        "nextWindows": {
            key: value
            for key, value in sorted(_mapping(plan.get("nextWindows")).items())
            if _applies_to(key.rpartition("/")[0], scope)
        },
        "catalogue": {"version": catalogue.get("version"), "records": catalogue.get("records")},
        "reconcileRuns": [
            {
                "startedAt": iso(run["started_at"]),
                "finishedAt": iso(run["finished_at"]),
                "revision": run["revision"],
                "result": run["result"],
                "durationMs": run["duration_ms"],
            }
            for run in run_store.list_reconcile_runs(conn)
        ],
    }


def visible_conditions(stored: Any) -> list[dict[str, str]]:
    """The stored conditions for a tenant-scoped reader: a `SourceVerified` message naming the
    approving objects left out (any tenant's) becomes a pointer to the scoped audit trail."""
    shown = []
    for condition in stored_list(stored):
        if not isinstance(condition, dict):
            continue
        entry = {
            key: str(condition.get(key, "")) for key in ("type", "status", "reason", "message")
        }
        if (entry["type"], entry["reason"]) == (
            ConditionType.SOURCE_VERIFIED,
            Reason.APPROVAL_REJECTED,
        ):
            entry["message"] = "approving changes were not applied; see the audit trail"
        shown.append(entry)
    return shown


def visible_entry(entry: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """An audit entry or alert (read API shape; `kind` names its type field: `type` or `kind`)
    as a tenant-scoped reader sees it. Repository-level entries without a tenant keep their
    type, time, revision and commit, and only count their errors: the text, the author and the
    message may belong to any tenant (`patchctl audit` and `validate` on the controller host
    show them). Every other entry is returned as it is."""
    if entry.get("tenant") is not None or entry.get(kind) not in REPOSITORY_LEVEL:
        return entry
    withheld = withheld_details(_mapping(entry.get("details")))
    shown = dict(entry) | {"details": withheld}
    if "actor" in shown:
        shown["actor"] = None
    if "summary" in shown:
        shown["summary"] = f"{withheld['errorCount']} error(s); `patchctl validate` lists them"
    return shown


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stored_list(value: Any) -> list[Any]:
    """A stored JSON value that should be a list; anything else reads as empty."""
    return value if isinstance(value, list) else []


def stored_text(value: Any) -> str | None:
    """A stored JSON value that should be text (a revision, a name); anything else is None."""
    return value if isinstance(value, str) and value else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _conditions(value: Any) -> list[dict[str, Any]]:
    """Stored conditions as `{type, status, reason, message}` texts; other entries dropped."""
    if not isinstance(value, list):
        return []
    return [
        {k: str(c.get(k) or "") for k in ("type", "status", "reason", "message")}
        | {k: v for k, v in c.items() if k not in {"type", "status", "reason", "message"}}
        for c in value
        if isinstance(c, dict)
    ]


def _next_windows(value: Any) -> dict[str, dict[str, Any]]:
    """Stored next windows as `{key: {open: bool, start: text or None, ...}}`."""
    return {
        str(key): window | {"open": window.get("open") is True, "start": window.get("start")}
        for key, window in _mapping(value).items()
        if isinstance(window, dict)
    }


def _scoped_pending(conn: Connection, recorded: Any, *, scope: str) -> dict[str, list[str]]:
    if not isinstance(recorded, dict) or not recorded:
        return {}
    tenants = devices.tenants_of(conn, {str(device_id) for device_id in recorded}, scope=scope)
    return {device_id: [str(p) for p in stored_list(recorded[device_id])] for device_id in tenants}


def _applies_to(tenant: str, scope: str) -> bool:
    """Whether an object of `tenant` ("*": every tenant) concerns a reader of `scope`: global
    objects, the scope's own and its clients', and its partner's (which apply to it)."""
    if tenant == "*":
        return True
    return tenant_contains(scope, tenant) or tenant_contains(tenant, scope)


PENDING_SHARD_PREFIX = "plan:pending:"  # + two hex digits: a shard of the pending approvals
PENDING_SHARDS = 256


def pending_shard(device_id: str) -> str:
    """The status key holding `device_id`'s pending approvals. The reconciler stores them in
    `PENDING_SHARDS` shards, so a pass rewrites only the shards of the devices that changed
    instead of one value listing the whole fleet (megabytes at 10,000 devices, written under
    SQLite's one write lock: issue 14)."""
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=1).digest()
    return _PENDING_SHARD_KEYS[digest[0]]


# the keys, made once: the reconciler keeps each device's, one string per shard instead of a
# new one per device (60 MB at 1,000,000 devices)
_PENDING_SHARD_KEYS = tuple(f"{PENDING_SHARD_PREFIX}{n:02x}" for n in range(PENDING_SHARDS))


def pending_shard_value(by_device: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """What a pending shard stores for `by_device` (device id → pending patch ids):
    `{"patchSets": [[patch id, ...], ...], "devices": {device id: index in patchSets}}`.
    Devices that wait for the same approvals share one list: most of a fleet does, and the
    shards are rewritten whole whenever one of their devices changes (an approval commit
    reaching 10% of 100,000 devices touches every shard), so each is about a tenth of the
    size the plain mapping would be."""
    sets: dict[tuple[str, ...], int] = {}
    devices = {
        device_id: sets.setdefault(patches, len(sets)) for device_id, patches in by_device.items()
    }
    return {"patchSets": [list(patches) for patches in sets], "devices": devices}


def pending_of_shard(value: Any) -> dict[str, list[str]]:
    """Device id → pending patch ids, from a stored shard (`pending_shard_value`), or from a
    shard stored as that plain mapping (before patch sets were shared); {} for anything else."""
    if not isinstance(value, dict):
        return {}
    sets, devices = value.get("patchSets"), value.get("devices")
    if not (isinstance(sets, list) and isinstance(devices, dict)):
        return value  # the plain mapping
    return {
        device_id: sets[index]
        for device_id, index in devices.items()
        if isinstance(index, int) and 0 <= index < len(sets)
    }


def plan_value(status: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The stored plan summary (`status_value(status, "plan")`) with `pendingApprovalsByDevice`
    gathered from its shards (`pending_shard`, `pending_of_shard`), when there are any; a
    summary stored whole (before the shards) is read as it is."""
    plan = status_value(status, "plan")
    shards = [entry for key, entry in status.items() if key.startswith(PENDING_SHARD_PREFIX)]
    if not shards:
        return plan
    recorded = plan.get("pendingApprovalsByDevice")
    merged = dict(recorded) if isinstance(recorded, dict) else {}
    for entry in shards:
        merged.update(pending_of_shard(entry.get("value")))
    return {**plan, "pendingApprovalsByDevice": merged}


def status_value(status: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, Any]:
    """The dict stored under a status key (`status_store.get_status` shape); {} when absent or not
    a dict, so renderers never fail on an odd stored value."""
    value = (status.get(key) or {}).get("value")
    return value if isinstance(value, dict) else {}


def iso(value: Any) -> Any:
    """A stored value for JSON: date-times as ISO 8601 text, anything else unchanged."""
    return value.isoformat() if isinstance(value, datetime) else value


def compliance_by_baseline(
    conn: Connection, *, tenant: str | None = None
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for (_, baseline, state), count in sorted(
        compliance.counts(conn, scope=tenant).items(), key=lambda item: item[0][1:]
    ):
        found[baseline][state] = found[baseline].get(state, 0) + count
    return dict(found)


def patch_status(conn: Connection, *, now: datetime, tenant: str | None = None) -> dict[str, int]:
    """Patch installs of the last 30 days: installed, failed, and pending (in flight)."""
    since = now - timedelta(days=PATCH_STATUS_DAYS)
    rows = jobs.install_outcomes(conn, issued_since=since, scope=tenant)
    counts: Counter[str] = Counter({"installed": 0, "failed": 0, "pending": 0})
    for state, patch_ids, results, times in rows:
        if state in {JobState.SUCCEEDED, JobState.FAILED}:
            for outcome in _mapping(results).values():
                result = outcome.get("result") if isinstance(outcome, dict) else None
                if result in {PatchResult.INSTALLED, PatchResult.FAILED}:
                    counts[result] += times
        elif state not in {JobState.EXPIRED, JobState.CANCELLED}:
            counts["pending"] += times * len(patch_ids) if isinstance(patch_ids, list) else 0
    return dict(counts)


def agents(conn: Connection, *, now: datetime, tenant: str | None = None) -> dict[str, int]:
    rows = devices.presence(conn, scope=tenant)
    online = sum(1 for seen, poll in rows if is_online(seen, timedelta(seconds=poll), now=now))
    return {"devices": len(rows), "online": online, "offline": len(rows) - online}


def _run(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def list_alerts(
    conn: Connection, *, tenant: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest alerts of `tenant` (None: all); `alert_store.list_alerts` with no filter."""
    return alert_store.list_alerts(conn, scope=tenant, limit=limit)
