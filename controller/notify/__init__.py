"""Notifications: alerts, audit events and published reports sent to webhooks, Slack and email.

`route` (pure) decides which Notification channels get which events; `Notifier` sends them in
the background with de-duplication, a rate limit with digests, retries with backoff and its
delivery state in the status table; `channels` holds the senders.
"""

from controller.core.retries import RetryPolicy
from controller.notify.channels import DeliveryError, sign, verify_signature
from controller.notify.delivery import ChannelQueue, ChannelStatus, RateLimit
from controller.notify.events import Attachment, Event, from_alert, from_audit
from controller.notify.messages import Message
from controller.notify.notifier import Notifier
from controller.notify.routing import Delivery, channel_id, route
from controller.notify.settings import SmtpSettings, load_smtp_settings

__all__ = [
    "Attachment",
    "ChannelQueue",
    "ChannelStatus",
    "Delivery",
    "DeliveryError",
    "Event",
    "Message",
    "Notifier",
    "RateLimit",
    "RetryPolicy",
    "SmtpSettings",
    "channel_id",
    "from_alert",
    "from_audit",
    "load_smtp_settings",
    "route",
    "sign",
    "verify_signature",
]
