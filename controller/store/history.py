"""Alerts, audit events, reconcile runs, compliance records and the key/value status.

Writers are small and explicit for the reconcile loop to call inside its apply transaction;
readers are tenant-scoped for the read API. Rows without a tenant concern every tenant (a
policy that applies everywhere, an invalid revision) and are visible to every scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controller.redaction import redact_text, redact_value
from controller.store import schema
from controller.store.scopes import in_scope

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection


def _visible(column: sa.ColumnElement[str], scope: str | None) -> sa.ColumnElement[bool]:
    return sa.or_(column.is_(None), in_scope(column, scope))


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAlert:
    kind: str  # InstallFailed, RebootPending, PolicyInvalid, ...
    severity: str  # info | warning | critical
    message: str
    tenant: str | None = None
    device_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None  # raise once per key (alerts on transitions, not on every pass)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAuditEvent:
    actor: str
    action: str
    object_key: str = ""
    tenant: str | None = None
    revision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def add_alert(conn: Connection, alert: NewAlert, *, now: datetime) -> bool:
    """Raise an alert; with a `dedupe_key` already raised, nothing happens (returns False).
    Message and details are redacted (`controller.redaction`): every token may read alerts."""
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(schema.alerts).values(
        tenant=alert.tenant,
        device_id=alert.device_id,
        kind=alert.kind,
        severity=alert.severity,
        message=redact_text(alert.message),
        details=redact_value(alert.details),
        dedupe_key=alert.dedupe_key,
        created_at=now,
        resolved_at=None,
    )
    result = conn.execute(statement.on_conflict_do_nothing(index_elements=["dedupe_key"]))
    return result.rowcount == 1


def list_alerts(
    conn: Connection,
    *,
    scope: str | None,
    since: datetime | None = None,
    open_only: bool = False,
    limit: int = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    a = schema.alerts.c
    query = sa.select(
        a.id,
        a.tenant,
        a.device_id,
        a.kind,
        a.severity,
        a.message,
        a.details,
        a.created_at,
        a.resolved_at,
    ).where(_visible(a.tenant, scope))
    if since is not None:
        query = query.where(a.created_at >= since)
    if open_only:
        query = query.where(a.resolved_at.is_(None))
    rows = conn.execute(
        query.order_by(a.created_at.desc(), a.id.desc()).limit(limit).offset(offset)
    )
    return [dict(row) for row in rows.mappings()]


def add_audit_event(conn: Connection, event: NewAuditEvent, *, now: datetime) -> None:
    """Append to the audit trail (rows are never updated nor deleted)."""
    conn.execute(
        schema.audit_events.insert().values(
            at=now,
            tenant=event.tenant,
            actor=event.actor,
            action=event.action,
            object=event.object_key,
            revision=event.revision,
            details=event.details,
        )
    )


def list_compliance(
    conn: Connection,
    *,
    scope: str,
    device_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = schema.compliance.c
    query = sa.select(
        c.device_id, c.baseline, c.tenant, c.state, c.revision, c.evaluated_at, c.patches
    ).where(in_scope(c.tenant, scope))
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    rows = conn.execute(
        query.order_by(c.tenant, c.device_id, c.baseline).limit(limit).offset(offset)
    )
    return [dict(row) for row in rows.mappings()]


def set_status(conn: Connection, key: str, value: Any, *, now: datetime) -> None:
    """Set one status value (JSON-ready), replacing the previous one."""
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(schema.status).values(key=key, value=value, updated_at=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


def get_status(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every status value with the time it was set."""
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value, s.updated_at).order_by(s.key))
    return {row.key: {"value": row.value, "updatedAt": row.updated_at} for row in rows}


def record_reconcile_run(
    conn: Connection,
    *,
    started_at: datetime,
    finished_at: datetime | None,
    revision: str | None,
    result: str,
    counts: dict[str, int] | None = None,
    message: str = "",
) -> None:
    duration = (
        int((finished_at - started_at).total_seconds() * 1000) if finished_at is not None else None
    )
    conn.execute(
        schema.reconcile_runs.insert().values(
            started_at=started_at,
            finished_at=finished_at,
            revision=revision,
            result=result,
            duration_ms=duration,
            counts=counts or {},
            message=message,
        )
    )


def list_reconcile_runs(conn: Connection, *, limit: int = 10) -> list[dict[str, Any]]:
    r = schema.reconcile_runs.c
    rows = conn.execute(
        sa.select(
            r.started_at, r.finished_at, r.revision, r.result, r.duration_ms, r.counts, r.message
        )
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]
