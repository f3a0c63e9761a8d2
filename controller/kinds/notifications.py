"""Notification: which events reach people, and through which channel."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from controller.kinds.common import Document, Model


class EventType(StrEnum):
    """Alerts and audit events a Notification can subscribe to."""

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
    events: tuple[EventType, ...] = Field(min_length=1, description="Event types sent.")
    min_severity: AlertSeverity = Field(
        default=AlertSeverity.INFO, description="Events below this severity are not sent."
    )
    channel: Channel = Field(description="Where events go.")


class Notification(Document):
    """Sends alerts and audit events of its tenant (and clients) to a channel."""

    KIND: ClassVar[str] = "Notification"
    kind: Literal["Notification"] = Field(description="Always `Notification`.")
    spec: NotificationSpec = Field(description="Events, minimum severity and channel.")
