"""What the dashboard shows, read out of the store for one tenant scope: `read_dashboard`.

Reuses the readers `patchctl status` and the report already have: the verdicts per baseline
(`runtime.status.compliance_by_baseline`, one GROUP BY), the 30-day patch status and who is
online (`runtime.status.patch_status`, `agents`), the installs per day (the report's), the
compliance trend the report writer keeps (read only, never written here) and the reconciler's
status keys `source`, `conditions` and `plan`. Nothing is read per device except the few rows
shown (pending approvals, alerts), so a page costs about the same for ten devices or 100,000.

Pending approvals are per device in a tenant's scope. The reconciler's `plan` status carries
them per device under `pendingApprovalsByDevice` when it records them; otherwise only the whole
fleet's total is known, and that total is shown only to a scope that holds every device (it is
then exactly the scope's figure), never to a client whose neighbours' counts it would reveal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.core.compliance import ComplianceState

# The report's own readers, so the page and the report count installs and keep the trend alike.
from controller.reports.collect import _installs as installs_per_day
from controller.reports.collect import trend_key, trend_points
from controller.reports.model import (
    BaselineSummary,
    InstallDay,
    PendingApproval,
    StateCounts,
    TrendPoint,
)
from controller.runtime import status as runtime_status
from controller.store import Connection, devices
from controller.store import alerts as alert_store
from controller.store import status as status_store

RECENT_ALERTS = 12


@dataclass(frozen=True, slots=True)
class Condition:
    """One Flux-style condition of the controller, as the reconciler wrote it."""

    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    created_at: datetime
    severity: str
    kind: str
    tenant: str | None
    device: str | None  # the device's name (its id when the name is not in the scope)
    message: str
    state: str  # open | acknowledged | resolved

    @property
    def resolved(self) -> bool:
        return self.state == alert_store.AlertState.RESOLVED


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything the page draws, for one scope at one instant."""

    scope: str
    now: datetime
    baselines: tuple[BaselineSummary, ...]  # verdicts per baseline, in baseline order
    verdicts: StateCounts  # every (device, baseline) verdict of the scope
    installs: tuple[InstallDay, ...]  # installed and failed patches per day, 30 days
    trend: tuple[TrendPoint, ...]  # the daily compliant share, today's included
    reboots: int  # devices whose OS asks for a reboot
    tenants: tuple[str, ...]  # the tenant paths in the scope that have devices
    patch_status: Mapping[str, int]  # installed / pending / failed, last 30 days
    agents: Mapping[str, int]  # devices / online / offline
    pending_total: int | None  # None: not known for this scope
    pending_devices: tuple[PendingApproval, ...] | None  # None: not broken down per device
    alerts: tuple[Alert, ...]
    applied_revision: str | None
    attempted_revision: str | None
    source_error_count: int  # counted, not quoted: errors may name any tenant's files
    conditions: tuple[Condition, ...]
    status_updated_at: datetime | None  # when the reconciler last wrote its status

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


def read_dashboard(conn: Connection, *, scope: str, now: datetime) -> Dashboard:
    """The dashboard of `scope` (a tenant path with its clients) as the store holds it."""
    status = status_store.get_status(conn)
    source = runtime_status.status_value(status, "source")
    plan = runtime_status.plan_value(status)
    baselines = _baselines(conn, scope=scope)
    verdicts = StateCounts(
        compliant=sum(b.counts.compliant for b in baselines),
        non_compliant=sum(b.counts.non_compliant for b in baselines),
        unknown=sum(b.counts.unknown for b in baselines),
    )
    pending = _pending_devices(conn, scope=scope, plan=plan)
    source_entry = status.get("source") or status.get("conditions") or {}
    return Dashboard(
        scope=scope,
        now=now,
        baselines=baselines,
        verdicts=verdicts,
        installs=installs_per_day(conn, tenant=scope, now=now),
        trend=_trend(status, scope=scope, now=now, today=verdicts),
        reboots=_reboots(conn, scope=scope),
        tenants=_tenants(conn, scope=scope),
        patch_status=runtime_status.patch_status(conn, now=now, tenant=scope),
        agents=runtime_status.agents(conn, now=now, tenant=scope),
        pending_total=(
            sum(len(p.patches) for p in pending)
            if pending is not None
            else _fleet_total(conn, scope=scope, plan=plan)
        ),
        pending_devices=pending,
        alerts=_alerts(conn, scope=scope),
        applied_revision=runtime_status.stored_text(source.get("lastAppliedRevision")),
        attempted_revision=runtime_status.stored_text(source.get("lastAttemptedRevision")),
        source_error_count=len(runtime_status.stored_list(source.get("errors"))),
        conditions=_conditions(status),
        status_updated_at=source_entry.get("updatedAt"),
    )


# --- steps ----------------------------------------------------------------------------------


def _baselines(conn: Connection, *, scope: str) -> tuple[BaselineSummary, ...]:
    found = runtime_status.compliance_by_baseline(conn, tenant=scope)
    return tuple(
        BaselineSummary(
            baseline=baseline,
            counts=StateCounts(
                compliant=states.get(ComplianceState.COMPLIANT.value, 0),
                non_compliant=states.get(ComplianceState.NON_COMPLIANT.value, 0),
                unknown=states.get(ComplianceState.UNKNOWN.value, 0),
            ),
        )
        for baseline, states in sorted(found.items())
    )


def _pending_devices(
    conn: Connection, *, scope: str, plan: Mapping[str, Any]
) -> tuple[PendingApproval, ...] | None:
    """The scope's devices with patches pending approval; None when not recorded per device."""
    recorded = plan.get("pendingApprovalsByDevice")
    if not isinstance(recorded, dict):
        return None
    ids = {str(device_id) for device_id, patches in recorded.items() if patches}
    found = [
        PendingApproval(
            device_id,
            name,
            tenant,
            tuple(map(str, runtime_status.stored_list(recorded[device_id]))),
        )
        for device_id, (name, tenant) in devices.identities(conn, ids, scope=scope).items()
    ]
    return tuple(sorted(found, key=lambda p: (p.tenant, p.device)))


def _fleet_total(conn: Connection, *, scope: str, plan: Mapping[str, Any]) -> int | None:
    """The fleet's total, when the scope holds every device (it is then the scope's figure)."""
    total = plan.get("pendingApprovals")
    if not isinstance(total, int):
        return None
    outside = devices.count_outside(conn, scope=scope)
    return total if outside == 0 else None


def _trend(
    status: Mapping[str, Mapping[str, Any]], *, scope: str, now: datetime, today: StateCounts
) -> tuple[TrendPoint, ...]:
    """The stored daily points, today's replaced by the current figure (nothing is written)."""
    points = trend_points(runtime_status.status_value(status, trend_key(scope)))
    if today.total:
        points[now.astimezone(UTC).date()] = today.compliant_percent
    return tuple(TrendPoint(day, value) for day, value in sorted(points.items()))


def _reboots(conn: Connection, *, scope: str) -> int:
    return sum(devices.count_reboot_pending(conn, scope=scope).values())


def _tenants(conn: Connection, *, scope: str) -> tuple[str, ...]:
    return devices.tenants(conn, scope=scope)


def _alerts(conn: Connection, *, scope: str) -> tuple[Alert, ...]:
    rows = alert_store.list_alerts(conn, scope=scope, limit=RECENT_ALERTS)
    ids = {row["device_id"] for row in rows if row["device_id"]}
    found = devices.identities(conn, ids, scope=scope)
    names = {device_id: name for device_id, (name, _) in found.items()}
    return tuple(
        Alert(
            id=int(row["id"]),
            created_at=row["created_at"],
            severity=str(row["severity"]),
            kind=str(row["kind"]),
            tenant=row["tenant"],
            device=names.get(row["device_id"], row["device_id"]),
            message=str(row["message"]),
            state=str(row["state"]),
        )
        for row in rows
    )


def _conditions(status: Mapping[str, Mapping[str, Any]]) -> tuple[Condition, ...]:
    found = (status.get("conditions") or {}).get("value")
    return tuple(
        Condition(type=c["type"], status=c["status"], reason=c["reason"], message=c["message"])
        for c in runtime_status.visible_conditions(found)
    )
