"""Notification: which events reach people, and through which channel.

This module is where the policy reads the alert and notification vocabulary: `EventType` names
every alert the controller raises (the `kind` of an `alerts` row, the API's and dashboard's `type`
filter) and every event a Notification subscribes to; `AlertSeverity` ranks them. Both are
defined in `controller.vocabularies` (light: the command line lists them without pydantic) and
re-exported here; `NOTIFIABLE_EVENTS` is this module's own. The audit
trail's own vocabulary (`controller.core.changes.AuditEventType`) names what happened to a policy
object; `controller.core.changes.notification_event` maps each of those to one `EventType`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from controller.kinds.common import Document, EmailAddress, Model
from controller.vocabularies import ENV_NAME_PATTERN, HTTP_URL_PATTERN
from controller.vocabularies import AlertSeverity as AlertSeverity  # noqa: PLC0414 - re-exported
from controller.vocabularies import EventType as EventType  # noqa: PLC0414 - re-exported

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


class WebhookChannel(Model):
    url: str = Field(pattern=HTTP_URL_PATTERN, description="Receives a JSON POST per event.")
    secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the HMAC-SHA256 signing secret.",
    )


class SlackChannel(Model):
    url_env: str = Field(
        pattern=ENV_NAME_PATTERN,
        description="Environment variable holding the Slack-compatible incoming-webhook URL.",
    )


class EmailChannel(Model):
    to: tuple[EmailAddress, ...] = Field(
        min_length=1,
        description="Recipients, bare addresses (`ops@example.com`); SMTP settings come from the "
        "server configuration.",
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
