"""Which Notification channels get which events.

Purely computational, no side effects: `route(events, notifications)` pairs each event with
every channel whose Notification subscribes to it, once per channel.

A Notification sees the events of its tenant and of that tenant's clients (a partner's
Notification sees `acme/retail`'s install failures); one without a tenant sees every event, and
an event without a tenant (an invalid policy revision) reaches every tenant's Notifications.
A published report is the exception: it holds its tenant's data, so a report of every tenant
reaches only Notifications without a tenant. A Notification must list the event's type in
`events`, and the event must be at least `minSeverity`.
Channels are identified by where they deliver, not by the Notification that names them: two
Notifications pointing at the same Slack webhook produce one message per event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from controller.kinds.common import tenant_contains
from controller.kinds.notifications import Channel, EventType, Notification
from controller.notify.events import Event

MAX_CHANNEL_ID = 180
TENANT_DATA_EVENTS = frozenset({EventType.REPORT_PUBLISHED})


def channel_kind(channel: Channel) -> str:
    """`webhook`, `slack` or `email`."""
    if channel.webhook is not None:
        return "webhook"
    if channel.slack is not None:
        return "slack"
    return "email"


def channel_id(channel: Channel) -> str:
    """A stable name for where a channel delivers, without its secrets.

    `slack:SLACK_URL`, `webhook:hooks.example.com:1a2b3c4d`, `email:ops@example.com:5e6f7a8b`.
    """
    digest = hashlib.sha256(
        json.dumps(channel.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()[:8]
    if channel.slack is not None:
        return f"slack:{channel.slack.url_env}"
    if channel.webhook is not None:
        host = urlsplit(channel.webhook.url).hostname or "webhook"
        return f"webhook:{host}:{digest}"[:MAX_CHANNEL_ID]
    if channel.email is None:
        raise ValueError("a channel sets exactly one of webhook, slack or email")
    recipients = channel.email.to
    more = f"+{len(recipients) - 1}" if len(recipients) > 1 else ""
    return f"email:{recipients[0]}{more}:{digest}"[:MAX_CHANNEL_ID]


def notification_ref(notification: Notification) -> str:
    return f"{notification.tenant or '*'}/{notification.name}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one channel, with the Notifications that asked for it."""

    channel_id: str
    channel: Channel
    event: Event
    notifications: tuple[str, ...]


def subscribes(notification: Notification, event: Event) -> bool:
    """Whether `notification` wants `event`: tenant, event type and minimum severity."""
    spec = notification.spec
    if event.type in TENANT_DATA_EVENTS:
        # a report holds its tenant's data: a client never receives the fleet's or a sibling's
        in_tenant = (
            notification.tenant is None
            if event.tenant is None
            else tenant_contains(notification.tenant, event.tenant)
        )
    else:
        in_tenant = event.tenant is None or tenant_contains(notification.tenant, event.tenant)
    return in_tenant and event.type in spec.events and event.severity.rank >= spec.min_severity.rank


def route(events: Iterable[Event], notifications: Iterable[Notification]) -> tuple[Delivery, ...]:
    """Every (channel, event) pair to deliver, each once, in event order then channel order.

    An event key seen twice (the same alert submitted again) is routed once. A repository-level
    event (an invalid revision, a rewritten history) reaches a channel that any tenant's
    Notification names withheld (`Event.withheld`: revision, commit id, error count), as the
    read API shows it to that tenant's token; the operator's own channels get it whole.
    """
    subscribers = sorted(notifications, key=notification_ref)
    found: dict[tuple[str, str], Delivery] = {}
    for event in events:
        # what the repository's own events say may concern any tenant: a channel that a
        # tenant's Notification reaches gets what that tenant's read token would see
        withheld = event.withheld() if event.repository_level else event
        for notification in subscribers:
            if not subscribes(notification, event):
                continue
            channel = notification.spec.channel
            key = (channel_id(channel), event.key)
            known = found.get(key)
            ref = notification_ref(notification)
            scoped = notification.tenant is not None
            if known is None:
                found[key] = Delivery(key[0], channel, withheld if scoped else event, (ref,))
            elif ref not in known.notifications:
                shown = withheld if scoped else known.event
                found[key] = Delivery(key[0], channel, shown, (*known.notifications, ref))
    return tuple(found.values())
