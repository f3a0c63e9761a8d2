"""Alerts: raised on transitions (one per dedupe key), resolved and reopened by the reconcile
loop, listed and filtered for the read API, the dashboard and the CLI.

Rows without a tenant concern every tenant (a policy that applies everywhere, an invalid
revision) and are visible to every scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.kinds.notifications import AlertSeverity, EventType
from controller.redaction import redact_text, redact_value
from controller.store import database, schema
from controller.store.scopes import in_scope, mentions, visible
from controller.vocabularies import AlertState as AlertState  # noqa: PLC0414 - re-exported

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
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


def add_alert(conn: Connection, alert: NewAlert, *, now: datetime) -> bool:
    """Raise an alert; with a `dedupe_key` already raised, nothing happens (returns False).
    Message and details are redacted (`controller.redaction`): every token may read alerts."""
    insert = database.conflict_insert(conn.dialect.name)
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


def add_alerts(conn: Connection, alerts: Sequence[NewAlert], *, now: datetime) -> int:
    """Raise many alerts in one driver executemany of INSERT ... ON CONFLICT (dedupe_key) DO
    NOTHING (`database.insert_many`, SQLite and PostgreSQL alike): an alert whose
    `dedupe_key` was raised before is skipped. Returns how many rows were inserted.
    Redacted like `add_alert`. (A multi-row VALUES statement per 1,000 alerts cost SQLAlchemy
    about 0.1 s each to compile: 9 s for the 80,000 alerts of a 10,000-device ledger.)"""
    rows = [
        {
            "tenant": alert.tenant,
            "device_id": alert.device_id,
            "kind": alert.kind,
            "severity": alert.severity,
            "message": redact_text(alert.message),
            "details": redact_value(alert.details),
            "dedupe_key": alert.dedupe_key,
            "created_at": now,
            "resolved_at": None,
        }
        for alert in alerts
    ]
    return database.insert_many(
        conn, schema.alerts, rows, skip_existing=True, unique=["dedupe_key"]
    )


def open_alert_keys(conn: Connection, *, kinds: Collection[str]) -> dict[str, int]:
    """The dedupe keys (→ alert id) of the unresolved alerts of `kinds`."""
    a = schema.alerts.c
    rows = conn.execute(
        sa.select(a.id, a.dedupe_key).where(
            a.resolved_at.is_(None), a.kind.in_(list(kinds)), a.dedupe_key.is_not(None)
        )
    )
    return {row.dedupe_key: row.id for row in rows}


def resolve_alerts(conn: Connection, alert_ids: Collection[int], *, now: datetime) -> int:
    """Mark alerts resolved at `now` (their condition cleared); returns how many changed.
    An alert resolved already keeps its first `resolved_at`."""
    a = schema.alerts.c
    ids = sorted(alert_ids)
    total = 0
    for start in range(0, len(ids), 500):
        result = conn.execute(
            schema.alerts.update()
            .where(a.id.in_(ids[start : start + 500]), a.resolved_at.is_(None))
            .values(resolved_at=now)
        )
        total += max(result.rowcount, 0)
    return total


def reopen_alerts(conn: Connection, keys: Collection[str]) -> int:
    """Clear `resolved_at` of resolved alerts whose condition holds again (same dedupe key)."""
    a = schema.alerts.c
    listed = sorted(keys)
    total = 0
    for start in range(0, len(listed), 500):
        result = conn.execute(
            schema.alerts.update()
            .where(a.dedupe_key.in_(listed[start : start + 500]), a.resolved_at.is_not(None))
            .values(resolved_at=None)
        )
        total += max(result.rowcount, 0)
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFilter:
    """What `list_alerts` keeps; an empty tuple or None keeps everything for that field.
    Several values of one field are alternatives (OR); the fields combine with AND.

    `device` is a device id or name (names are lowercase, unique per tenant); `since` is
    inclusive, `until` exclusive (both compared with the alert's `created_at`, UTC).
    `unresolved_only` is the read API's older `open=true` (acknowledged alerts included)."""

    kinds: tuple[EventType, ...] = ()
    severities: tuple[AlertSeverity, ...] = ()
    states: tuple[AlertState, ...] = ()
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    unresolved_only: bool = False


def alert_state(row: Any) -> AlertState:
    """The state of an alert row (a mapping with `resolved_at` and `acknowledged_at`)."""
    if row["resolved_at"] is not None:
        return AlertState.RESOLVED
    if row["acknowledged_at"] is not None:
        return AlertState.ACKNOWLEDGED
    return AlertState.OPEN


def _state_clause(state: AlertState) -> sa.ColumnElement[bool]:
    a = schema.alerts.c
    if state is AlertState.RESOLVED:
        return a.resolved_at.is_not(None)
    if state is AlertState.ACKNOWLEDGED:
        return sa.and_(a.resolved_at.is_(None), a.acknowledged_at.is_not(None))
    return sa.and_(a.resolved_at.is_(None), a.acknowledged_at.is_(None))


def _alert_columns() -> tuple[sa.ColumnElement[Any], ...]:
    a, d = schema.alerts.c, schema.devices.c
    return (
        a.id,
        a.tenant,
        a.device_id,
        d.name.label("device_name"),
        a.kind,
        a.severity,
        a.message,
        a.details,
        a.created_at,
        a.acknowledged_at,
        a.acknowledged_by,
        a.resolved_at,
    )


def _alerts_with_devices(scope: str | None) -> sa.Select[Any]:
    """Alerts joined to their device's name; the name only when the device is in the scope."""
    a, d = schema.alerts.c, schema.devices.c
    joined = schema.alerts.outerjoin(
        schema.devices,
        sa.and_(a.device_id == d.id, in_scope(d.tenant, scope)) if scope else a.device_id == d.id,
    )
    query = sa.select(*_alert_columns()).select_from(joined)
    return query.where(_visible(a.tenant, scope)) if scope else query


def list_alerts(
    conn: Connection,
    *,
    scope: str | None,
    filters: AlertFilter | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Alerts of a tenant scope (with those that concern every tenant), newest first, kept by
    `filters`. `scope` None: every alert (the controller host's own CLI). Each row has the
    alert's columns, `device_name` (None for a device outside the scope or none) and `state`."""
    a, d = schema.alerts.c, schema.devices.c
    found = filters or AlertFilter()
    query = _alerts_with_devices(scope)
    if found.kinds:
        query = query.where(a.kind.in_([k.value for k in found.kinds]))
    if found.severities:
        query = query.where(a.severity.in_([s.value for s in found.severities]))
    if found.states:
        query = query.where(sa.or_(*(_state_clause(s) for s in found.states)))
    if found.unresolved_only:
        query = query.where(a.resolved_at.is_(None))
    if found.device is not None:
        named = sa.select(d.id).where(sa.or_(d.id == found.device, d.name == found.device.lower()))
        if scope:
            named = named.where(in_scope(d.tenant, scope))
        query = query.where(a.device_id.in_(named))
    if found.since is not None:
        query = query.where(a.created_at >= found.since)
    if found.until is not None:
        query = query.where(a.created_at < found.until)
    rows = conn.execute(
        query.order_by(a.created_at.desc(), a.id.desc()).limit(limit).offset(offset)
    )
    return [dict(row) | {"state": alert_state(row).value} for row in rows.mappings()]


MAX_ALERT_ID = 2**31 - 1  # the id column is a 32-bit INTEGER on PostgreSQL


def get_alert(conn: Connection, alert_id: int, *, scope: str | None) -> dict[str, Any] | None:
    """One alert of the scope (or one that concerns every tenant) in `list_alerts`' shape, or
    None when there is none with that id in the scope (any id outside 1..MAX_ALERT_ID)."""
    if not 1 <= alert_id <= MAX_ALERT_ID:
        return None
    query = _alerts_with_devices(scope).where(schema.alerts.c.id == alert_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row) | {"state": alert_state(row).value}


def newest_id(conn: Connection) -> int:
    """The id of the newest alert, 0 when there is none."""
    return int(conn.execute(sa.select(sa.func.max(schema.alerts.c.id))).scalar() or 0)


def alerts_after(conn: Connection, after_id: int, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` alerts with an id above `after_id`, oldest first, as notifications read
    them: id, tenant, device_id, kind, severity, message, details, dedupe_key, created_at."""
    a = schema.alerts.c
    rows = conn.execute(
        sa.select(
            a.id,
            a.tenant,
            a.device_id,
            a.kind,
            a.severity,
            a.message,
            a.details,
            a.dedupe_key,
            a.created_at,
        )
        .where(a.id > after_id)
        .order_by(a.id)
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]


def alerts_mentioning(
    conn: Connection, patch: str, *, scope: str | None, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` alerts visible to `scope` whose details name `patch` (as `patch` or in
    `patches`), newest first, created at or after `since` (None: any time): id, created_at,
    tenant, device_id, kind, severity, message, details."""
    a = schema.alerts.c
    statement = (
        sa.select(
            a.id, a.created_at, a.tenant, a.device_id, a.kind, a.severity, a.message, a.details
        )
        .where(visible(a.tenant, scope), mentions(a.details, patch))
        .order_by(a.created_at.desc(), a.id.desc())
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(a.created_at >= since)
    found = []
    for row in conn.execute(statement).mappings():
        details = row["details"] or {}
        if details.get("patch") == patch or patch in details.get("patches", ()):
            found.append(dict(row))
    return found


def count_by_kind(conn: Connection) -> dict[str, int]:
    """Every alert (any tenant, resolved ones too) counted by kind, in kind order."""
    a = schema.alerts.c
    rows = conn.execute(sa.select(a.kind, sa.func.count()).group_by(a.kind))
    return {kind: int(count) for kind, count in sorted(rows)}
