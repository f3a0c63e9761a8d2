"""The audit trail's rows: appended, never updated nor deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.store import schema

if TYPE_CHECKING:
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
