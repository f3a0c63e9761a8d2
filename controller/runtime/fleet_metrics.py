"""Fleet metrics for `/metrics`: what the store says about the devices of one tenant scope.

A handful of aggregate queries (GROUP BY in the database, never a row per device in the answer
except for the online/offline split, which needs each device's own poll interval), reduced to
Prometheus metric families. Labels are bounded vocabularies only: tenant, baseline, os family,
job kind and state, reconcile result, channel kind; never a device id, name or a channel's
address. The caller caches the result (`controller.server.metrics.FleetCache`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core.conditions import ConditionStatus, ConditionType, ReconcileResult
from controller.core.observed import JobKind, JobState, online_since
from controller.kinds.common import tenant_contains
from controller.notify.delivery import STATUS_KEY_PREFIX
from controller.runtime import feeds
from controller.store import devices, history, schema
from controller.store.scopes import in_scope

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# A device is online when seen within two of its poll intervals (as `patchctl status` counts),
# stale when not seen for a day (the status's "seen in the last day"), offline in between.
STALE_AFTER = timedelta(days=1)
DEVICE_STATES = ("online", "offline", "stale")
COMPLIANCE_STATES = ("compliant", "non-compliant", "unknown")
RECONCILE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_CHUNK = 500  # ids per IN (...) query, under every engine's parameter limit

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of a family: `name + suffix{labels} value` (suffix: `_bucket`, `_sum`, ...)."""

    labels: Labels
    value: float
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its name, type (gauge | counter | histogram), help text and samples."""

    name: str
    type: str
    help: str
    samples: tuple[Sample, ...] = field(default=())


# the result of a pass that applied a revision, as `reconcile_runs.result` stores it
APPLIED = ReconcileResult.APPLIED.value


def collect(conn: Connection, *, scope: str, now: datetime) -> list[Family]:
    """The fleet metric families of tenant `scope` and its clients at `now` (aware UTC).

    Controller-wide families (reconcile runs, the policy source, notification channels) carry
    no tenant label; every read token may see them, as it sees them in `/api/v1/status`.
    """
    status = history.get_status(conn)
    return [
        _devices(conn, scope=scope, now=now),
        _pending_reboots(conn, scope=scope),
        _compliance(conn, scope=scope),
        _pending_approvals(conn, status, scope=scope),
        _jobs(conn, scope=scope),
        _install_failures(conn, scope=scope),
        *_reconciles(conn, now=now),
        _policy_invalid(status),
        *_feeds(status, scope=scope, now=now),
        *_notifications(status),
    ]


def _labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def _devices(conn: Connection, *, scope: str, now: datetime) -> Family:
    """Counted in the database: one query for the poll intervals in use (a handful), then one
    GROUP BY whose CASE tests each device against the cut-off of its own interval."""
    d = schema.devices.c
    polls = conn.execute(
        sa.select(d.poll_interval).where(in_scope(d.tenant, scope)).distinct()
    ).scalars()
    online = [
        (
            sa.and_(
                d.poll_interval == poll,
                d.last_seen >= online_since(timedelta(seconds=poll), now=now),
            ),
            "online",
        )
        for poll in sorted(polls)
    ]
    classified = sa.case(*online, (d.last_seen < now - STALE_AFTER, "stale"), else_="offline")
    rows = conn.execute(
        sa.select(d.tenant, d.os_family, classified, sa.func.count())
        .where(in_scope(d.tenant, scope), d.retired_at.is_(None))
        .group_by(d.tenant, d.os_family, classified)
    )
    counts = {(tenant, os_family, found): int(n) for tenant, os_family, found, n in rows}
    groups = sorted({(tenant, os_family) for tenant, os_family, _ in counts})
    samples = tuple(
        Sample(
            _labels(tenant=tenant, os=os_family, state=state),
            counts.get((tenant, os_family, state), 0),
        )
        for tenant, os_family in groups
        for state in DEVICE_STATES
    )
    return Family(
        "patchctl_devices",
        "gauge",
        "Enrolled devices by tenant, OS family and state (online: seen within two poll "
        "intervals; stale: not seen for a day; offline: in between).",
        samples,
    )


def _pending_reboots(conn: Connection, *, scope: str) -> Family:
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.tenant, d.os_family, sa.func.count())
        .where(in_scope(d.tenant, scope), devices.reboot_pending(), d.retired_at.is_(None))
        .group_by(d.tenant, d.os_family)
    )
    samples = tuple(
        Sample(_labels(tenant=tenant, os=os_family), int(count))
        for tenant, os_family, count in sorted(rows, key=lambda row: (row[0], row[1]))
    )
    return Family(
        "patchctl_devices_pending_reboot",
        "gauge",
        "Devices whose OS asks for a reboot (the last scan's signal, or a running kernel older "
        "than the newest installed one), by tenant and OS family.",
        samples,
    )


def _compliance(conn: Connection, *, scope: str) -> Family:
    c = schema.compliance.c
    rows = conn.execute(
        sa.select(c.tenant, c.baseline, c.state, sa.func.count())
        .where(in_scope(c.tenant, scope))
        .group_by(c.tenant, c.baseline, c.state)
    )
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for tenant, baseline, state, count in rows:
        counts[tenant, baseline][state] = int(count)
    samples = tuple(
        Sample(_labels(tenant=tenant, baseline=baseline, state=state), found.get(state, 0))
        for (tenant, baseline), found in sorted(counts.items())
        for state in sorted({*COMPLIANCE_STATES, *found})
    )
    return Family(
        "patchctl_compliance_devices",
        "gauge",
        "Devices by tenant, baseline (tenant/name) and compliance state, as the last "
        "reconcile evaluated them.",
        samples,
    )


def _pending_approvals(
    conn: Connection, status: dict[str, dict[str, Any]], *, scope: str
) -> Family:
    plan = _mapping(status.get("plan", {}).get("value"))
    recorded = _mapping(plan.get("pendingApprovalsByDevice"))
    d = schema.devices.c
    ids = sorted(str(device_id) for device_id in recorded)
    counts: Counter[str] = Counter()
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            sa.select(d.id, d.tenant).where(
                d.id.in_(ids[start : start + _CHUNK]), in_scope(d.tenant, scope)
            )
        )
        for device_id, tenant in rows:
            patches = recorded[device_id]
            counts[tenant] += len(patches) if isinstance(patches, list) else 0
    return Family(
        "patchctl_pending_approvals",
        "gauge",
        "Patches that a baseline would install but that wait for an approval (one per device "
        "and patch), by tenant, as the last reconcile planned.",
        tuple(Sample(_labels(tenant=tenant), n) for tenant, n in sorted(counts.items())),
    )


def _jobs(conn: Connection, *, scope: str) -> Family:
    j = schema.jobs.c
    rows = conn.execute(
        sa.select(j.tenant, j.kind, j.state, sa.func.count())
        .where(in_scope(j.tenant, scope))
        .group_by(j.tenant, j.kind, j.state)
    )
    counts = {(tenant, kind, state): int(n) for tenant, kind, state, n in rows}
    tenants = sorted({tenant for tenant, _, _ in counts})
    kinds = sorted({*(k.value for k in JobKind), *(kind for _, kind, _ in counts)})
    states = sorted({*(s.value for s in JobState), *(state for _, _, state in counts)})
    samples = tuple(
        Sample(_labels(tenant=tenant, kind=kind, state=state), counts.get((tenant, kind, state), 0))
        for tenant in tenants
        for kind in kinds
        for state in states
    )
    return Family(
        "patchctl_jobs",
        "gauge",
        "Jobs in the store by tenant, kind and state (terminal states included: jobs are "
        "kept as history).",
        samples,
    )


def _install_failures(conn: Connection, *, scope: str) -> Family:
    j = schema.jobs.c
    rows = conn.execute(
        sa.select(j.tenant, sa.func.count())
        .where(in_scope(j.tenant, scope), j.kind == JobKind.INSTALL, j.state == JobState.FAILED)
        .group_by(j.tenant)
    )
    return Family(
        "patchctl_install_failures_total",
        "counter",
        "Install jobs that ended failed (the agent's failure or the controller's run "
        "deadline), by tenant.",
        tuple(Sample(_labels(tenant=t), int(n)) for t, n in sorted(rows, key=lambda r: r[0])),
    )


def _reconciles(conn: Connection, *, now: datetime) -> list[Family]:
    r = schema.reconcile_runs.c
    seconds = r.duration_ms / 1000.0
    buckets = [
        sa.func.sum(sa.case((seconds <= bound, 1), else_=0)).label(f"le{i}")
        for i, bound in enumerate(RECONCILE_BUCKETS)
    ]
    rows = conn.execute(
        sa.select(r.result, sa.func.count(), sa.func.sum(r.duration_ms), *buckets)
        .where(r.duration_ms.is_not(None))
        .group_by(r.result)
        .order_by(r.result)
    ).all()
    samples: list[Sample] = []
    for row in rows:
        result, count, total_ms = row[0], int(row[1]), int(row[2] or 0)
        for bound, in_bucket in zip(RECONCILE_BUCKETS, row[3:], strict=True):
            le = _labels(result=result, le=f"{bound:g}")
            samples.append(Sample(le, int(in_bucket or 0), "_bucket"))
        samples.append(Sample(_labels(result=result, le="+Inf"), count, "_bucket"))
        samples.append(Sample(_labels(result=result), total_ms / 1000.0, "_sum"))
        samples.append(Sample(_labels(result=result), count, "_count"))
    last_success = conn.execute(
        sa.select(sa.func.max(r.finished_at)).where(r.result == APPLIED)
    ).scalar()
    families = [
        Family(
            "patchctl_reconcile_duration_seconds",
            "histogram",
            "Reconcile passes (of every replica, from the store) by result and duration.",
            tuple(samples),
        )
    ]
    if isinstance(last_success, datetime):
        families.append(
            Family(
                "patchctl_reconcile_last_success_timestamp_seconds",
                "gauge",
                "When the last reconcile that applied a revision finished (unix seconds).",
                (Sample((), last_success.timestamp()),),
            )
        )
    since = _applied_since(conn)
    if since is not None:
        families.append(
            Family(
                "patchctl_applied_revision_age_seconds",
                "gauge",
                "How long the enforced revision has been applied (since the first pass that "
                "applied it, after any other revision).",
                (Sample((), max(0.0, (now - since).total_seconds())),),
            )
        )
    return families


def _applied_since(conn: Connection) -> datetime | None:
    """When the revision applied last was first applied after the one before it."""
    r = schema.reconcile_runs.c
    current = conn.execute(
        sa.select(r.revision)
        .where(r.result == APPLIED, r.revision.is_not(None))
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(1)
    ).scalar()
    if current is None:
        return None
    before = conn.execute(
        sa.select(sa.func.max(r.started_at)).where(
            r.result == APPLIED, r.revision.is_not(None), r.revision != current
        )
    ).scalar()
    query = sa.select(sa.func.min(r.finished_at)).where(r.result == APPLIED, r.revision == current)
    if before is not None:
        query = query.where(r.started_at > before)
    first = conn.execute(query).scalar()
    return first if isinstance(first, datetime) else None


def _policy_invalid(status: dict[str, dict[str, Any]]) -> Family:
    conditions = (status.get("conditions") or {}).get("value")
    stalled = any(
        isinstance(c, dict)
        and c.get("type") == ConditionType.STALLED
        and c.get("status") == ConditionStatus.TRUE
        for c in (conditions if isinstance(conditions, list) else [])
    )
    return Family(
        "patchctl_policy_invalid",
        "gauge",
        "1 while the branch head does not validate (the last valid revision is still "
        "enforced), 0 otherwise.",
        (Sample((), 1 if stalled else 0),),
    )


def _feeds(status: dict[str, dict[str, Any]], *, scope: str, now: datetime) -> list[Family]:
    """Each PatchFeed that concerns the scope (global ones, `tenant="*"`, its own, its clients'
    and its partner's), from the status the feed refresh stores under `feed:<tenant>/<name>`."""
    age: list[Sample] = []
    failing: list[Sample] = []
    for key, entry in sorted(status.items()):
        if not key.startswith(feeds.STATUS_PREFIX):
            continue
        tenant, _, name = key.removeprefix(feeds.STATUS_PREFIX).rpartition("/")
        if tenant != "*" and not (tenant_contains(scope, tenant) or tenant_contains(tenant, scope)):
            continue
        value = _mapping(entry.get("value"))
        labels = _labels(tenant=tenant, feed=name)
        failing.append(Sample(labels, 1 if value.get("result") == "failed" else 0))
        success = _moment(value.get("lastSuccessAt"))
        if success is not None:
            age.append(Sample(labels, max(0.0, (now - success).total_seconds())))
    return [
        Family(
            "patchctl_feed_age_seconds",
            "gauge",
            "Seconds since each patch feed last imported successfully (absent before the "
            "first success), by the feed's tenant (* for global feeds) and name.",
            tuple(age),
        ),
        Family(
            "patchctl_feed_failing",
            "gauge",
            "1 while a patch feed's last refresh failed, 0 otherwise.",
            tuple(failing),
        ),
    ]


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _notifications(status: dict[str, dict[str, Any]]) -> list[Family]:
    """Channel states summed by channel kind: a channel's id names its address (a host, an
    email recipient), which is no label for every tenant's reader."""
    failing: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for key, entry in status.items():
        value = _mapping(entry.get("value"))
        if not key.startswith(STATUS_KEY_PREFIX) or not isinstance(value.get("kind"), str):
            continue
        kind = value["kind"]
        failing[kind] += 1 if _count(value.get("failures")) > 0 else 0
        dropped[kind] += _count(value.get("dropped"))
    return [
        Family(
            "patchctl_notification_failing_channels",
            "gauge",
            "Notification channels whose last delivery attempt failed, by channel kind.",
            tuple(Sample(_labels(kind=k), n) for k, n in sorted(failing.items())),
        ),
        Family(
            "patchctl_notification_dropped_events_total",
            "counter",
            "Notification events given up on (attempts exhausted, permanent error, queue "
            "full) by channel kind, since the notifying replica started.",
            tuple(Sample(_labels(kind=k), n) for k, n in sorted(dropped.items())),
        ),
    ]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
