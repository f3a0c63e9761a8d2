"""Routing: which Notification channels get which events (pure)."""

from __future__ import annotations

import json

import pytest
from notifyhelpers import T0, event, notification

from controller.kinds.notifications import AlertSeverity, EventType, Notification
from controller.notify import channel_id, events, route
from controller.notify.messages import Message


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


INVALID_ROW = {
    "id": 7,
    "at": T0,
    "tenant": None,
    "actor": "lars@logistics.example",
    "action": "PolicyInvalid",
    "object": "",
    "revision": "main@sha1:" + "a" * 40,
    "details": {
        "revision": "main@sha1:" + "a" * 40,
        "commit": {"sha": "a" * 40, "message": "logistics: rush LOG-4802", "author": {}},
        "errors": [
            "policies/approvals/logistics.yaml:4:7: spec.bogus: unknown field",
            "policies/approvals/logistics.yaml:5:3: spec.reason: required field is missing",
        ],
    },
}
REWRITE_ROW = INVALID_ROW | {
    "action": "HistoryRewritten",
    "actor": "force-push",
    "details": {
        "revision": "main@sha1:" + "b" * 40,
        "rewrite": {"oldTip": "c" * 40, "newTip": "b" * 40, "dropped": ["d" * 40]},
    },
}
# what only the operator's channels may read of the two
SECRETS = ("logistics", "LOG-4802", "spec.bogus", "d" * 40)
WATCHING = ("PolicyInvalid", "ConfigurationChanged")


def delivered(row: dict[str, object], *subscribers: Notification) -> list[str]:
    """The text and JSON each channel gets for the audit row, as `route` shapes them."""
    found = events.from_audit(row)
    assert found is not None
    return [
        Message((d.event,)).text + json.dumps(d.event.as_json(), default=str)
        for d in route([found], list(subscribers))
    ]


@pytest.mark.parametrize("row", [INVALID_ROW, REWRITE_ROW], ids=["invalid", "rewritten"])
def test_a_tenants_channel_gets_a_repository_event_withheld(row: dict[str, object]) -> None:
    """A client's channel learns that the repository has an invalid revision (or was rewritten),
    its revision and error count, and nothing the read API withholds from its token: no error
    text, author, commit message or dropped commit; the operator's channel gets all of it."""
    (client,) = delivered(row, notification(tenant="acme/retail", events=WATCHING))
    (operator,) = delivered(row, notification(tenant=None, events=WATCHING))
    assert [] == [secret for secret in SECRETS if secret in client]
    assert "main@sha1:" in client
    assert [secret for secret in SECRETS if secret in operator]


def test_an_invalid_revision_says_what_the_alert_says_and_lists_the_errors() -> None:
    """The audit event's subject is the alert's (they share a key: either may be sent) and the
    operator's message lists the errors with their files and lines."""
    (text,) = delivered(INVALID_ROW, notification(tenant=None, events=WATCHING))
    subject = f"main@sha1:{'a' * 40} does not validate (2 error(s)); still enforcing the last"
    assert subject in text
    assert "- policies/approvals/logistics.yaml:4:7: spec.bogus: unknown field" in text
    assert "Committed by lars@logistics.example." in text
    (withheld,) = delivered(INVALID_ROW, notification(tenant="acme", events=WATCHING))
    assert subject in withheld


def test_a_channel_shared_with_a_tenant_gets_it_withheld() -> None:
    """The operator's Notification and a client's naming the same channel: one message, the
    client's view of it (a channel is one destination, whoever named it)."""
    (text,) = delivered(
        INVALID_ROW,
        notification("ops", tenant=None, events=WATCHING),
        notification("client", tenant="acme/retail", events=WATCHING),
    )
    assert [] == [secret for secret in SECRETS if secret in text]
