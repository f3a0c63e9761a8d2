"""Routing: which Notification channels get which events (pure)."""

from __future__ import annotations

import pytest
from notifyhelpers import event, notification

from controller.kinds.notifications import AlertSeverity, EventType
from controller.notify import channel_id, route


@pytest.mark.parametrize(
    ("subscriber", "source", "expected"),
    [
        ("acme", "acme/retail", True),
        ("acme", "acme", True),
        ("acme/retail", "acme/retail", True),
        ("acme/retail", "acme/logistics", False),
        ("acme/retail", "acme", False),
        ("acme", "acmecorp", False),
        (None, "other", True),
        ("acme/retail", None, True),
    ],
    ids=[
        "partner-sees-client",
        "partner-sees-itself",
        "client-sees-itself",
        "client-not-sibling",
        "client-not-partner",
        "prefix-is-not-a-tenant",
        "global-sees-all",
        "global-event-reaches-all",
    ],
)
def test_notifications_see_their_tenant_and_its_clients(
    subscriber: str | None, source: str | None, expected: bool
) -> None:
    """A partner's Notification sees its clients' events, a client's only its own."""
    deliveries = route([event(tenant=source)], [notification(tenant=subscriber)])
    assert expected == bool(deliveries)


@pytest.mark.parametrize(
    ("kind", "severity", "min_severity", "expected"),
    [
        (EventType.INSTALL_FAILED, AlertSeverity.CRITICAL, "warning", True),
        (EventType.INSTALL_FAILED, AlertSeverity.WARNING, "warning", True),
        (EventType.INSTALL_FAILED, AlertSeverity.INFO, "warning", False),
        (EventType.INSTALL_COMPLETE, AlertSeverity.CRITICAL, "info", False),
        (EventType.REBOOT_PENDING, AlertSeverity.WARNING, "critical", False),
    ],
    ids=["above", "equal", "below", "not-subscribed", "below-critical"],
)
def test_events_and_min_severity_filter(
    kind: EventType, severity: AlertSeverity, min_severity: str, expected: bool
) -> None:
    """Only listed event types at or above `minSeverity` are sent."""
    deliveries = route(
        [event(kind=kind, severity=severity)], [notification(min_severity=min_severity)]
    )
    assert expected == bool(deliveries)


def test_one_channel_gets_an_event_once() -> None:
    """Two Notifications on the same channel, and the same event twice, make one delivery."""
    partner = notification("partner-ops", tenant="acme")
    client = notification("retail-ops", tenant="acme/retail")
    deliveries = route([event("k1"), event("k1"), event("k2")], [client, partner])
    assert [("slack:SLACK_URL", "k1"), ("slack:SLACK_URL", "k2")] == [
        (d.channel_id, d.event.key) for d in deliveries
    ]
    assert ("acme/partner-ops", "acme/retail/retail-ops") == deliveries[0].notifications


def test_different_channels_each_get_the_event() -> None:
    """Each channel is delivered to separately."""
    slack = notification("chat")
    hook = notification(
        "hook", channel={"webhook": {"url": "https://hooks.example/x", "secretEnv": "HOOK"}}
    )
    deliveries = route([event()], [slack, hook])
    assert ["slack:SLACK_URL", channel_id(hook.spec.channel)] == [d.channel_id for d in deliveries]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ({"slack": {"urlEnv": "OPS_SLACK"}}, "slack:OPS_SLACK"),
        (
            {"webhook": {"url": "https://hooks.example/patch?token=s3cret"}},
            "webhook:hooks.example:",
        ),
        ({"email": {"to": ["ops@example.com", "sec@example.com"]}}, "email:ops@example.com+1:"),
    ],
    ids=["slack", "webhook", "email"],
)
def test_channel_ids_name_the_destination_without_secrets(
    channel: dict[str, object], expected: str
) -> None:
    """A status key a person recognises, never a URL's token."""
    identifier = channel_id(notification(channel=channel).spec.channel)
    assert identifier.startswith(expected)
    assert "s3cret" not in identifier


@pytest.mark.parametrize(
    ("subscriber", "report_tenant", "expected"),
    [
        (None, None, True),
        ("acme", None, False),
        ("acme", "acme/retail", True),
        ("acme/retail", "acme", False),
    ],
    ids=[
        "global-gets-fleet",
        "tenant-never-gets-fleet",
        "partner-gets-client",
        "client-not-partner",
    ],
)
def test_reports_reach_only_tenants_allowed_to_read_them(
    subscriber: str | None, report_tenant: str | None, expected: bool
) -> None:
    """A report holds its tenant's data: a fleet report goes only to global Notifications."""
    published = event(
        kind=EventType.REPORT_PUBLISHED, severity=AlertSeverity.INFO, tenant=report_tenant
    )
    subscribed = notification(tenant=subscriber, events=("ReportPublished",))
    assert expected == bool(route([published], [subscribed]))
