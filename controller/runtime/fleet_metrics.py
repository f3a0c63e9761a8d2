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

from controller.core.conditions import ConditionStatus, ConditionType, ReconcileResult
from controller.core.observed import JobKind, JobState
from controller.kinds.common import tenant_contains
from controller.notify.delivery import STATUS_KEY_PREFIX
from controller.runtime import feeds
from controller.runtime import status as runtime_status
from controller.store import compliance, devices, jobs, runs
from controller.store import status as status_store

if TYPE_CHECKING:
    from controller.store import Connection

# A device is online when seen within two of its poll intervals (as `patchctl status` counts),
# stale when not seen for a day (the status's "seen in the last day"), offline in between.
STALE_AFTER = timedelta(days=1)
DEVICE_STATES = ("online", "offline", "stale")
COMPLIANCE_STATES = ("compliant", "non-compliant", "unknown")
RECONCILE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

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
    status = status_store.get_status(conn)
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
    """Counted in the database (`store.devices.count_by_presence`)."""
    counts = devices.count_by_presence(conn, scope=scope, now=now, stale_after=STALE_AFTER)
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
    samples = tuple(
        Sample(_labels(tenant=tenant, os=os_family), count)
        for (tenant, os_family), count in devices.count_reboot_pending(conn, scope=scope).items()
    )
    return Family(
        "patchctl_devices_pending_reboot",
        "gauge",
        "Devices whose OS asks for a reboot (the last scan's signal, or a running kernel older "
        "than the newest installed one), by tenant and OS family.",
        samples,
    )


def _compliance(conn: Connection, *, scope: str) -> Family:
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (tenant, baseline, state), count in compliance.counts(conn, scope=scope).items():
        counts[tenant, baseline][state] = count
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
    plan = runtime_status.plan_value(status)
    recorded = _mapping(plan.get("pendingApprovalsByDevice"))
    counts: Counter[str] = Counter()
    tenants = devices.tenants_of(conn, {str(device_id) for device_id in recorded}, scope=scope)
    for device_id, tenant in tenants.items():
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
    counts = jobs.count_by_state(conn, scope=scope)
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
    failed = jobs.count_failed_installs(conn, scope=scope)
    return Family(
        "patchctl_install_failures_total",
        "counter",
        "Install jobs that ended failed (the agent's failure or the controller's run "
        "deadline), by tenant.",
        tuple(Sample(_labels(tenant=t), n) for t, n in failed.items()),
    )


def _reconciles(conn: Connection, *, now: datetime) -> list[Family]:
    samples: list[Sample] = []
    for row in runs.duration_histogram(conn, RECONCILE_BUCKETS):
        result, count = row.result, row.count
        for bound, in_bucket in zip(RECONCILE_BUCKETS, row.in_bucket, strict=True):
            le = _labels(result=result, le=f"{bound:g}")
            samples.append(Sample(le, in_bucket, "_bucket"))
        samples.append(Sample(_labels(result=result, le="+Inf"), count, "_bucket"))
        samples.append(Sample(_labels(result=result), row.total_ms / 1000.0, "_sum"))
        samples.append(Sample(_labels(result=result), count, "_count"))
    last_success = runs.last_applied_at(conn)
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
    since = runs.applied_since(conn)
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
