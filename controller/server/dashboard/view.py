"""What the dashboard shows, read out of the store for one tenant scope: `read_dashboard`.

Reuses the readers the report and `patchctl status` already have: `reports.collect` (compliance
per baseline, installs per day, the compliance trend; read-only, the trend is not written),
`runtime.status.patch_status` and `agents` (the 30-day patch status and who is online) and the
reconciler's status keys `source`, `conditions` and `plan`.

Pending approvals are per device in a tenant's scope. The reconciler's `plan` status carries
them per device under `pendingApprovalsByDevice` when it records them; otherwise only the whole
fleet's total is known, and that total is shown only to a scope that holds every device (it is
then exactly the scope's figure), never to a client whose neighbours' counts it would reveal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.reports import collect
from controller.reports.model import PendingApproval, ReportData
from controller.runtime import status as runtime_status
from controller.store import history, schema
from controller.store.devices import in_scope

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
    created_at: datetime
    severity: str
    kind: str
    tenant: str | None
    device: str | None  # the device's name (its id when the name is not in the scope)
    message: str
    resolved: bool


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything the page draws, for one scope at one instant."""

    scope: str
    now: datetime
    report: ReportData
    tenants: tuple[str, ...]  # the tenant paths in the scope that have devices
    patch_status: Mapping[str, int]  # installed / pending / failed, last 30 days
    agents: Mapping[str, int]  # devices / online / offline
    pending_total: int | None  # None: not known for this scope
    pending_devices: tuple[PendingApproval, ...] | None  # None: not broken down per device
    alerts: tuple[Alert, ...]
    applied_revision: str | None
    attempted_revision: str | None
    source_errors: tuple[str, ...]
    conditions: tuple[Condition, ...]
    status_updated_at: datetime | None  # when the reconciler last wrote its status

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


def read_dashboard(conn: Connection, *, scope: str, now: datetime) -> Dashboard:
    """The dashboard of `scope` (a tenant path with its clients) as the store holds it."""
    status = history.get_status(conn)
    source = _value(status, "source")
    plan = _value(status, "plan")
    by_device = _pending_by_device(plan)
    in_scope_ids = _device_ids(conn, scope=scope) if by_device is not None else set()
    report = collect(
        conn,
        tenant=scope,
        now=now,
        revision=source.get("lastAppliedRevision"),
        pending_approvals=(
            {d: p for d, p in by_device.items() if d in in_scope_ids}
            if by_device is not None
            else None
        ),
        keep_trend=False,
    )
    pending_total = _pending_total(conn, scope=scope, plan=plan, report=report)
    source_entry = status.get("source") or status.get("conditions") or {}
    return Dashboard(
        scope=scope,
        now=now,
        report=report,
        tenants=_tenants(conn, scope=scope),
        patch_status=runtime_status.patch_status(conn, now=now, tenant=scope),
        agents=runtime_status.agents(conn, now=now, tenant=scope),
        pending_total=pending_total,
        pending_devices=report.pending_approvals,
        alerts=_alerts(conn, scope=scope),
        applied_revision=source.get("lastAppliedRevision"),
        attempted_revision=source.get("lastAttemptedRevision"),
        source_errors=tuple(str(e) for e in source.get("errors") or ()),
        conditions=_conditions(status),
        status_updated_at=source_entry.get("updatedAt"),
    )


# --- steps ----------------------------------------------------------------------------------


def _value(status: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, Any]:
    value = (status.get(key) or {}).get("value")
    return value if isinstance(value, dict) else {}


def _pending_by_device(plan: Mapping[str, Any]) -> dict[str, Sequence[str]] | None:
    found = plan.get("pendingApprovalsByDevice")
    if not isinstance(found, dict):
        return None
    return {str(device): [str(p) for p in patches or ()] for device, patches in found.items()}


def _pending_total(
    conn: Connection, *, scope: str, plan: Mapping[str, Any], report: ReportData
) -> int | None:
    """The scope's pending approvals; the fleet's total only when the scope is the fleet."""
    if report.pending_approvals is not None:
        return sum(len(p.patches) for p in report.pending_approvals)
    total = plan.get("pendingApprovals")
    if not isinstance(total, int):
        return None
    d = schema.devices.c
    outside = conn.execute(
        sa.select(sa.func.count()).select_from(schema.devices).where(~in_scope(d.tenant, scope))
    ).scalar_one()
    return total if outside == 0 else None


def _device_ids(conn: Connection, *, scope: str) -> set[str]:
    d = schema.devices.c
    return set(conn.execute(sa.select(d.id).where(in_scope(d.tenant, scope))).scalars())


def _tenants(conn: Connection, *, scope: str) -> tuple[str, ...]:
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.tenant).where(in_scope(d.tenant, scope)).group_by(d.tenant).order_by(d.tenant)
    )
    return tuple(rows.scalars())


def _alerts(conn: Connection, *, scope: str) -> tuple[Alert, ...]:
    rows = history.list_alerts(conn, scope=scope, limit=RECENT_ALERTS)
    ids = {row["device_id"] for row in rows if row["device_id"]}
    d = schema.devices.c
    names: dict[str, str] = {}
    if ids:
        query = sa.select(d.id, d.name).where(d.id.in_(sorted(ids)), in_scope(d.tenant, scope))
        names = {row.id: row.name for row in conn.execute(query)}
    return tuple(
        Alert(
            created_at=row["created_at"],
            severity=str(row["severity"]),
            kind=str(row["kind"]),
            tenant=row["tenant"],
            device=names.get(row["device_id"], row["device_id"]),
            message=str(row["message"]),
            resolved=row["resolved_at"] is not None,
        )
        for row in rows
    )


def _conditions(status: Mapping[str, Mapping[str, Any]]) -> tuple[Condition, ...]:
    found = (status.get("conditions") or {}).get("value") or []
    return tuple(
        Condition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "Unknown")),
            reason=str(c.get("reason", "")),
            message=str(c.get("message", "")),
        )
        for c in found
        if isinstance(c, dict)
    )
