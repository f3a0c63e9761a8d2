"""Notification: which events reach people, and through which channel.

This module is the one home of the alert and notification vocabulary: `EventType` names every
alert the controller raises (the `kind` of an `alerts` row, the API's and dashboard's `type`
filter) and every event a Notification subscribes to; `AlertSeverity` ranks them. The audit
trail's own vocabulary (`controller.core.changes.AuditEventType`) names what happened to a policy
object; `controller.core.changes.notification_event` maps each of those to one `EventType`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from controller.kinds.common import Document, Model


class EventType(StrEnum):
    """Every alert kind the controller raises, and the events a Notification subscribes to.

    Stored as the `kind` of an alert row and sent as an event's `type`: the values are wire
    values and never change. Every member but `FeedFailed` can be subscribed to
    (`NOTIFIABLE_EVENTS`); a feed failure is shown in alerts, not notified (docs/feeds.md).
    """

    INITIATE = "Initiate"  # a scan was initiated
    SEARCH = "Search"  # missing patches were found and approved
    DOWNLOAD_INITIATED = "DownloadInitiated"
    INSTALL_COMPLETE = "InstallComplete"
    INSTALL_FAILED = "InstallFailed"
    REBOOT_PENDING = "RebootPending"
    POLICY_INVALID = "PolicyInvalid"
    AGENT_OFFLINE_IN_WINDOW = "AgentOfflineInWindow"
    JOB_EXPIRED = "JobExpired"
    JOB_TIMED_OUT = "JobTimedOut"  # a started job reached no final state before its deadline
    APPROVAL_CHANGED = "ApprovalChanged"
    APPROVAL_REJECTED = "ApprovalRejected"
    CONFIGURATION_CHANGED = "ConfigurationChanged"
    REPORT_PUBLISHED = "ReportPublished"
    IDENTITY_CONFLICT = "IdentityConflict"  # another machine claimed an enrolled device's name
    FEED_FAILED = "FeedFailed"  # a patch feed failed to sync (an alert only, not notifiable)


# What a Notification's `events:` may list (and what notify.events turns an alert row into).
NOTIFIABLE_EVENTS = frozenset(EventType) - {EventType.FEED_FAILED}


def _notifiable(event: EventType) -> EventType:
    if event not in NOTIFIABLE_EVENTS:
        raise ValueError(f"{event.value} is an alert kind that cannot be notified (yet)")
    return event


# One subscribable event: the schema lists only the notifiable values (a $ref would list all).
NotifiableEvent = Annotated[
    EventType,
    AfterValidator(_notifiable),
    WithJsonSchema(
        {
            "description": "Alerts and audit events a Notification can subscribe to.",
            "enum": [event.value for event in EventType if event in NOTIFIABLE_EVENTS],
            "title": "EventType",
            "type": "string",
        }
    ),
]


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {AlertSeverity.INFO: 0, AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}


class WebhookChannel(Model):
    url: str = Field(pattern=r"^https?://", description="Receives a JSON POST per event.")
    secret_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the HMAC-SHA256 signing secret.",
    )


class SlackChannel(Model):
    url_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the Slack-compatible incoming-webhook URL.",
    )


class EmailChannel(Model):
    to: tuple[str, ...] = Field(
        min_length=1, description="Recipients; SMTP settings come from the server configuration."
    )


class Channel(Model):
    """Exactly one of webhook, slack or email."""

    webhook: WebhookChannel | None = Field(default=None, description="Generic signed webhook.")
    slack: SlackChannel | None = Field(default=None, description="Slack-compatible webhook.")
    email: EmailChannel | None = Field(default=None, description="Email through SMTP.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(c is not None for c in (self.webhook, self.slack, self.email)) != 1:
            raise ValueError("set exactly one of webhook, slack or email")
        return self


class NotificationSpec(Model):
    events: tuple[NotifiableEvent, ...] = Field(min_length=1, description="Event types sent.")
    min_severity: AlertSeverity = Field(
        default=AlertSeverity.INFO, description="Events below this severity are not sent."
    )
    channel: Channel = Field(description="Where events go.")


class Notification(Document):
    """Sends alerts and audit events of its tenant (and clients) to a channel."""

    KIND: ClassVar[str] = "Notification"
    kind: Literal["Notification"] = Field(description="Always `Notification`.")
    spec: NotificationSpec = Field(description="Events, minimum severity and channel.")
