"""What notifications carry: an `Event` (an alert, an audit event or a published report).

Events are frozen values. `key` identifies what happened across every source and every retry
(two alert rows of one transition share it): a channel delivers each key once. `event_id` is
the stable id receivers de-duplicate with: `alert:<row id>` / `audit:<row id>` for stored
rows (the same after a crash or a leader change), the key otherwise (reports). The converters
read the rows the store returns (`alerts`, `audit_events`); nothing here touches the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.core import audit, changes
from controller.core.ids import AlertKey
from controller.kinds.notifications import NOTIFIABLE_EVENTS, AlertSeverity, EventType
from controller.redaction import redact_text, redact_value


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent along by channels that can (email)."""

    filename: str
    content_type: str  # e.g. text/html
    data: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as every channel renders it."""

    key: str  # unique per event: the alert's transition key, `audit:<id>`, `report:<...>`
    type: EventType
    severity: AlertSeverity
    message: str  # one line a person can act on
    at: datetime
    tenant: str | None = None  # None: concerns every tenant
    device_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    body: str | None = None  # longer text (Markdown), e.g. a report summary
    attachments: tuple[Attachment, ...] = ()
    id: str | None = None  # `alert:<id>` or `audit:<id>`: the stored row it was read from

    @property
    def event_id(self) -> str:
        """The id receivers drop duplicates by: the stored row's id, else the key."""
        return self.id or self.key

    @property
    def position(self) -> tuple[str, int] | None:
        """(`alert` or `audit`, row id) for an event read from the store; None otherwise."""
        if self.id is None:
            return None
        source, _, number = self.id.partition(":")
        return source, int(number)

    @property
    def repository_level(self) -> bool:
        """An event of the repository, not of a tenant (an invalid revision, a rewritten
        history): what it says may concern any tenant (`core.audit.REPOSITORY_LEVEL`)."""
        return self.tenant is None and (
            self.type is EventType.POLICY_INVALID
            or self.details.get("action") in audit.REPOSITORY_LEVEL
        )

    def withheld(self) -> Event:
        """The event as a tenant's Notification gets it when it is `repository_level`: the
        revision, the commit id and the error count, as a read token sees the audit entry
        (no error text, author, message or dropped commits)."""
        details = audit.withheld_details(self.details)
        what = self.details.get("action") or self.type.value
        revision = details["revision"] or "the policy repository"
        message = (
            audit.invalid_revision_message(revision, details["errorCount"])
            if self.type is EventType.POLICY_INVALID
            else f"{what} in {revision}"
        )
        return dataclasses.replace(self, message=message, details=details, body=None)

    @property
    def title(self) -> str:
        """`InstallFailed (critical) acme/retail: message`."""
        scope = f" {self.tenant}" if self.tenant else ""
        return f"{self.type.value} ({self.severity.value}){scope}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        """The event as webhook receivers get it (attachments are named, not embedded)."""
        document: dict[str, Any] = {
            "id": self.event_id,
            "key": self.key,
            "type": self.type.value,
            "severity": self.severity.value,
            "message": self.message,
            "at": _stamp(self.at),
            "tenant": self.tenant,
            "deviceId": self.device_id,
            "details": dict(self.details),
        }
        if self.body is not None:
            document["body"] = self.body
        if self.attachments:
            document["attachments"] = [a.filename for a in self.attachments]
        return document


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def from_alert(row: Mapping[str, Any]) -> Event | None:
    """An `alerts` row as an event; None for an alert kind no Notification can subscribe to."""
    try:
        kind = EventType(str(row["kind"]))
        severity = AlertSeverity(str(row["severity"]))
    except ValueError:
        return None
    if kind not in NOTIFIABLE_EVENTS:
        return None
    key = row.get("dedupe_key") or f"alert:{row['id']}"
    details = redact_value(dict(row.get("details") or {}))
    return Event(
        key=str(key),
        type=kind,
        severity=severity,
        message=redact_text(str(row["message"])),
        at=row["created_at"],
        tenant=row.get("tenant"),
        device_id=row.get("device_id"),
        details=details,
        body=_errors_body(details) if kind is EventType.POLICY_INVALID else None,
        id=f"alert:{row['id']}",
    )


_AUDIT_SEVERITY = {
    EventType.APPROVAL_CHANGED: AlertSeverity.INFO,
    EventType.APPROVAL_REJECTED: AlertSeverity.WARNING,
    EventType.POLICY_INVALID: AlertSeverity.CRITICAL,
    EventType.CONFIGURATION_CHANGED: AlertSeverity.INFO,
}


def from_audit(row: Mapping[str, Any]) -> Event | None:
    """An `audit_events` row as an event: approval changes reach `ApprovalChanged`, other policy
    changes `ConfigurationChanged`; the controller's own actions (jobs issued) reach nothing."""
    try:
        action = changes.AuditEventType(str(row["action"]))
    except ValueError:
        return None
    kind = changes.notification_event(action)
    key = f"audit:{row['id']}"
    if kind is EventType.POLICY_INVALID and row.get("revision"):
        # the alert's key: one message, not two
        key = AlertKey.of(kind, str(row["revision"])).format()
    subject = f" {row['object']}" if row.get("object") else ""
    revision = f" in {row['revision']}" if row.get("revision") else ""
    actor = f" by {row['actor']}" if row.get("actor") else ""
    details = redact_value({"action": action.value, **dict(row.get("details") or {})})
    message = f"{action.value}{subject}{revision}{actor}"
    body = None
    if kind is EventType.POLICY_INVALID and row.get("revision"):
        # the alert's own words, which ever of the two is sent (they share the key), and the
        # errors themselves for the channels allowed to read them (`Event.withheld`)
        count = audit.withheld_details(details)["errorCount"]
        message = audit.invalid_revision_message(str(row["revision"]), count)
        body = _errors_body(details, actor=str(row["actor"]) if row.get("actor") else None)
    return Event(
        key=key,
        type=kind,
        severity=_AUDIT_SEVERITY.get(kind, AlertSeverity.INFO),
        message=redact_text(message),
        at=row["at"],
        tenant=row.get("tenant"),
        details=details,
        body=body,
        id=f"audit:{row['id']}",
    )


ERRORS_SHOWN = 10  # errors an invalid revision's message lists; `patchctl validate` has all


def _errors_body(details: Mapping[str, Any], *, actor: str | None = None) -> str | None:
    """The first errors of an invalid revision (`details.errors`: `file:line:column: field:
    message` lines), for the operator's channels; None when there are none."""
    errors = details.get("errors")
    if not isinstance(errors, list) or not errors:
        return None
    lines = [f"- {redact_text(str(error))}" for error in errors[:ERRORS_SHOWN]]
    if len(errors) > ERRORS_SHOWN:
        lines.append(f"- … and {len(errors) - ERRORS_SHOWN} more: `patchctl validate` lists them")
    if actor:
        lines.append(f"\nCommitted by {redact_text(actor)}.")
    return "\n".join(lines)
