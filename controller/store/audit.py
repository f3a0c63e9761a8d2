"""The audit trail's rows: appended, never updated nor deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.store import schema
from controller.store.scopes import mentions, visible

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAuditEvent:
    actor: str
    action: str
    object_key: str = ""
    tenant: str | None = None
    revision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


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


def add_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append many audit rows in one statement; each maps the `audit_events` columns (`at`,
    `tenant`, `actor`, `action`, `object`, `revision`, `details`) to its value."""
    if rows:
        conn.execute(schema.audit_events.insert(), [dict(row) for row in rows])


def newest_id(conn: Connection) -> int:
    """The id of the newest audit row, 0 when there is none."""
    return int(conn.execute(sa.select(sa.func.max(schema.audit_events.c.id))).scalar() or 0)


def events_after(conn: Connection, after_id: int, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` audit rows with an id above `after_id`, oldest first: id, at, tenant,
    actor, action, object, revision, details."""
    e = schema.audit_events.c
    rows = conn.execute(
        sa.select(e.id, e.at, e.tenant, e.actor, e.action, e.object, e.revision, e.details)
        .where(e.id > after_id)
        .order_by(e.id)
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]


def events_newest_first(
    conn: Connection,
    *,
    scope: str | None,
    lineage: Collection[str] = (),
    since: datetime | None = None,
    mentioning: str | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Audit rows visible to `scope` (None: all; rows without a tenant concern everyone),
    newest first, read lazily: id, at, tenant, actor, action, object, revision, details.

    `lineage`: further tenants whose non-controller rows (policy changes) are shown too (a
    partner's changes apply to its clients). `since` is inclusive (UTC). `mentioning` keeps
    rows whose details' JSON text holds that id (a pre-filter: check the meaning). `limit`
    None reads until the caller stops."""
    a = schema.audit_events.c
    shown = visible(a.tenant, scope)
    if lineage:
        shown = sa.or_(shown, sa.and_(a.tenant.in_(list(lineage)), a.actor != "controller"))
    statement = sa.select(
        a.id, a.at, a.tenant, a.actor, a.action, a.object, a.revision, a.details
    ).where(shown)
    if since is not None:
        statement = statement.where(a.at >= since)
    if mentioning is not None:
        statement = statement.where(mentions(a.details, mentioning))
    statement = statement.order_by(a.at.desc(), a.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    for row in conn.execute(statement).mappings():
        yield dict(row)
