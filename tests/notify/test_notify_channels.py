"""The channels against real local servers: a signed webhook, Slack's format, email over SMTP."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from notifyhelpers import T0, closed_port, event, http_receiver, smtp_server

from controller.kinds.notifications import AlertSeverity, EventType
from controller.notify import DeliveryError, Message, SmtpSettings, verify_signature
from controller.notify.channels import EmailSender, SlackSender, WebhookSender
from controller.notify.events import Attachment, Event
from controller.testing import json_logs

SECRET = "hook-secret-123"  # noqa: S105 - a test secret
PLAIN_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SECRET_ENV = "HOOK_SECRET"  # noqa: S105 - the name of a variable
PASSWORD = "pw-from-env"  # noqa: S105 - a test password
PASSWORD_ENV = "SMTP_PASSWORD"  # noqa: S105 - the name of a variable
SLACK_SECRET = "XXXXXXXXXXXXXXXXXXXXXXXX"  # noqa: S105 - Slack's own documentation placeholder


def clock() -> datetime:
    return T0


def test_webhook_body_is_signed_with_hmac_sha256() -> None:
    """The receiver recomputes the signature over the raw body with the shared secret."""
    with http_receiver() as receiver:
        sender = WebhookSender(
            receiver.url, secret_env=SECRET_ENV, environ={SECRET_ENV: SECRET}, clock=clock
        )
        sender.send(Message((event(),)))
    [request] = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert expected == request.headers["X-Patchctl-Signature"]
    assert verify_signature(SECRET.encode(), request.body, request.headers["X-Patchctl-Signature"])
    assert not verify_signature(b"wrong", request.body, request.headers["X-Patchctl-Signature"])
    assert (str(int(T0.timestamp())), "InstallFailed", "application/json") == (
        request.headers["X-Patchctl-Timestamp"],
        request.headers["X-Patchctl-Event"],
        request.headers["Content-Type"],
    )


def test_webhook_body_carries_the_event_and_the_signed_time() -> None:
    """The JSON body: version, sentAt (the timestamp header's instant), the event."""
    with http_receiver() as receiver:
        WebhookSender(receiver.url, secret_env=None, environ={}, clock=clock).send(
            Message((event(),))
        )
    [request] = receiver.requests
    assert "X-Patchctl-Signature" not in request.headers
    assert "k1" == request.headers["X-Patchctl-Event-Id"]
    assert {
        "version": 1,
        "sender": "patchctl",
        "sentAt": "2026-12-07T06:00:00Z",
        "digest": False,
        "subject": "InstallFailed (critical) acme/retail: USN-1 failed on web-01: dpkg error",
        "text": "InstallFailed (critical) acme/retail: USN-1 failed on web-01: dpkg error",
        "events": [
            {
                "id": "k1",
                "key": "k1",
                "type": "InstallFailed",
                "severity": "critical",
                "message": "USN-1 failed on web-01: dpkg error",
                "at": "2026-12-07T06:00:00Z",
                "tenant": "acme/retail",
                "deviceId": None,
                "details": {},
            }
        ],
    } == json.loads(request.body)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (429, False), (404, True), (401, True)],
    ids=["500", "503", "429", "404", "401"],
)
def test_webhook_http_errors_say_whether_to_retry(status: int, permanent: bool) -> None:
    """Server errors and throttling are retried; other client errors are not."""
    with http_receiver(status=status) as receiver:
        sender = WebhookSender(receiver.url, secret_env=None, environ={}, clock=clock)
        with pytest.raises(DeliveryError, match=f"127.0.0.1: HTTP {status}") as raised:
            sender.send(Message((event(),)))
    assert permanent == raised.value.permanent


def test_webhook_connection_refused_is_a_transient_error() -> None:
    """Nothing listening is worth retrying later."""
    url = f"http://127.0.0.1:{closed_port()}/hook"
    sender = WebhookSender(url, secret_env=None, environ={}, clock=clock, timeout=2)
    with pytest.raises(DeliveryError, match=r"127\.0\.0\.1: ConnectError") as raised:
        sender.send(Message((event(),)))
    assert not raised.value.permanent


def test_webhook_slow_receiver_times_out() -> None:
    """A receiver slower than the timeout fails the attempt instead of hanging it."""
    with http_receiver(delay=1.0) as receiver:
        sender = WebhookSender(receiver.url, secret_env=None, environ={}, clock=clock, timeout=0.2)
        with pytest.raises(DeliveryError, match=r"timed out after 0\.2s"):
            sender.send(Message((event(),)))


def test_webhook_without_its_secret_sends_nothing() -> None:
    """A missing secret is a permanent error; an unsigned body is never sent instead."""
    with http_receiver() as receiver:
        sender = WebhookSender(receiver.url, secret_env=SECRET_ENV, environ={}, clock=clock)
        with pytest.raises(DeliveryError, match="HOOK_SECRET is not set") as raised:
            sender.send(Message((event(),)))
    assert (True, []) == (raised.value.permanent, receiver.requests)


def test_slack_gets_a_text_message_with_escaped_content() -> None:
    """A Slack-compatible body is `{"text": ...}`, with `&`, `<` and `>` escaped."""
    noisy = event(message="KB1 <failed> & rolled back")
    with http_receiver() as receiver:
        SlackSender(url_env="SLACK_URL", environ={"SLACK_URL": receiver.url}).send(
            Message((noisy,))
        )
    [request] = receiver.requests
    assert {
        "text": "*InstallFailed* (critical) acme/retail: KB1 &lt;failed&gt; &amp; rolled back"
    } == json.loads(request.body)


def test_slack_digest_lists_the_held_back_events() -> None:
    """A digest names how many events it carries and lists each."""
    events = (
        event("a"),
        event("b", kind=EventType.REBOOT_PENDING, severity=AlertSeverity.WARNING),
    )
    with http_receiver() as receiver:
        SlackSender(url_env="SLACK_URL", environ={"SLACK_URL": receiver.url}).send(
            Message(events, digest=True)
        )
    assert (
        "*patchctl: 2 events* (rate limit reached)\n"
        "• *InstallFailed* (critical) acme/retail: USN-1 failed on web-01: dpkg error\n"
        "• *RebootPending* (warning) acme/retail: USN-1 failed on web-01: dpkg error"
    ) == json.loads(receiver.requests[0].body)["text"]


def test_slack_without_its_url_is_a_permanent_error() -> None:
    """The URL is a secret in the environment; without it nothing can be sent."""
    with pytest.raises(DeliveryError, match="SLACK_URL is not set"):
        SlackSender(url_env="SLACK_URL", environ={}).send(Message((event(),)))


def report_event() -> Event:
    return Event(
        key="report:weekly",
        type=EventType.REPORT_PUBLISHED,
        severity=AlertSeverity.INFO,
        message="compliance report for acme: 75.0% compliant",
        at=T0,
        tenant="acme",
        body="# Patch compliance: acme\n\n| Figure | Value |\n",
        attachments=(Attachment("compliance-acme.html", "text/html", b"<!DOCTYPE html><p>r</p>"),),
    )


def received(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_email_is_delivered_through_smtp_with_the_report_attached() -> None:
    """The summary is the body, the HTML report an attachment, sent to every recipient."""
    with smtp_server() as server:
        settings = SmtpSettings(host=server.host, port=server.port, sender="patchctl@example.com")
        EmailSender(
            to=("ops@example.com", "sec@example.com"), settings=settings, environ={}, clock=clock
        ).send(Message((report_event(),)))
    [envelope] = server.messages
    message = received(envelope.original_content or b"")
    assert (["ops@example.com", "sec@example.com"], "patchctl@example.com") == (
        envelope.rcpt_tos,
        envelope.mail_from,
    )
    assert (
        "[patchctl] ReportPublished (info) acme: compliance report for acme: 75.0% compliant"
    ) == message["Subject"]
    assert report_event().event_id == message["X-Patchctl-Event-Id"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "# Patch compliance: acme" in body.get_content()
    [attachment] = list(message.iter_attachments())
    assert ("compliance-acme.html", "text/html", b"<!DOCTYPE html><p>r</p>") == (
        attachment.get_filename(),
        attachment.get_content_type(),
        attachment.get_payload(decode=True),
    )


def test_mailboxes_with_display_names_are_delivered_to_their_addresses() -> None:
    """`Ops <ops@example.com>` recipients and sender (written so before this version too): the
    envelope carries the bare addresses and the Message-ID the sender's domain."""
    with smtp_server() as server:
        settings = SmtpSettings(
            host=server.host, port=server.port, sender="patchctl <patchctl@example.com>"
        )
        EmailSender(to=("Ops <ops@example.com>",), settings=settings, environ={}, clock=clock).send(
            Message((report_event(),))
        )
    [envelope] = server.messages
    message = received(envelope.original_content or b"")
    assert (["ops@example.com"], "patchctl@example.com") == (
        envelope.rcpt_tos,
        envelope.mail_from,
    )
    assert str(message["Message-ID"]).endswith("@example.com>")


@PLAIN_AUTH
def test_email_logs_in_with_the_password_from_the_environment() -> None:
    """The password comes from the variable the settings name, never from a file."""
    with smtp_server(password=PASSWORD) as server:
        settings = SmtpSettings(
            host=server.host,
            port=server.port,
            sender="patchctl@example.com",
            user="patchctl",
            password_env=PASSWORD_ENV,
        )
        EmailSender(
            to=("ops@example.com",),
            settings=settings,
            environ={PASSWORD_ENV: PASSWORD},
            clock=clock,
        ).send(Message((event(),)))
    assert ([("patchctl", PASSWORD)], 1) == (server.logins, len(server.messages))


@PLAIN_AUTH
def test_email_with_a_wrong_password_is_a_permanent_error() -> None:
    """The server's 5xx answer is final: retrying the same password cannot help."""
    with smtp_server(password=PASSWORD) as server:
        settings = SmtpSettings(
            host=server.host,
            port=server.port,
            sender="patchctl@example.com",
            user="patchctl",
            password_env=PASSWORD_ENV,
        )
        sender = EmailSender(
            to=("ops@example.com",), settings=settings, environ={PASSWORD_ENV: "not-" + PASSWORD}
        )
        with pytest.raises(DeliveryError, match="SMTP 535") as raised:
            sender.send(Message((event(),)))
    assert raised.value.permanent


def test_email_to_a_server_that_is_down_is_retried() -> None:
    """A refused connection is transient."""
    settings = SmtpSettings(
        host="127.0.0.1", port=closed_port(), sender="patchctl@example.com", timeout=2
    )
    sender = EmailSender(to=("ops@example.com",), settings=settings, environ={})
    with pytest.raises(DeliveryError, match="ConnectionRefusedError") as raised:
        sender.send(Message((event(),)))
    assert not raised.value.permanent


def test_email_without_smtp_settings_is_a_permanent_error() -> None:
    """No [smtp] table: nothing can be sent, and the error says where to configure it."""
    sender = EmailSender(to=("ops@example.com",), settings=None, environ={})
    with pytest.raises(DeliveryError, match=r"no \[smtp\] settings in patchctl.toml"):
        sender.send(Message((event(),)))


@pytest.mark.parametrize(
    "retry_after",
    ["20", "Mon, 07 Dec 2026 06:00:20 GMT"],
    ids=["seconds", "http-date"],
)
def test_slack_throttling_carries_the_wait_it_asks_for(retry_after: str) -> None:
    """A 429 with Retry-After (seconds or an HTTP date) is a transient error asking for 20s."""
    with http_receiver(script=[(429, {"Retry-After": retry_after})]) as receiver:
        sender = SlackSender(url_env="SLACK_URL", environ={"SLACK_URL": receiver.url}, clock=clock)
        with pytest.raises(DeliveryError, match=r"HTTP 429 .*\(retry after 20s\)") as raised:
            sender.send(Message((event(),)))
    assert (False, timedelta(seconds=20)) == (raised.value.permanent, raised.value.retry_after)


def test_webhook_unavailable_carries_the_wait_it_asks_for() -> None:
    """A 503 with Retry-After is retried no sooner than asked."""
    with http_receiver(script=[(503, {"Retry-After": "120"})]) as receiver:
        sender = WebhookSender(receiver.url, secret_env=None, environ={}, clock=clock)
        with pytest.raises(DeliveryError) as raised:
            sender.send(Message((event(),)))
    assert timedelta(seconds=120) == raised.value.retry_after


def test_slack_webhook_url_reaches_no_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx logs every request's URL; a Slack webhook URL is shown without its key."""
    with (
        http_receiver(script=[(429, {"Retry-After": "20"})]) as receiver,
        json_logs(capsys) as lines,
    ):
        url = receiver.url.replace("/hook", f"/services/T00000000/B00000000/{SLACK_SECRET}")
        sender = SlackSender(url_env="SLACK_URL", environ={"SLACK_URL": url})
        with pytest.raises(DeliveryError) as raised:
            sender.send(Message((event(),)))
        sender.send(Message((event(),)))
    requests = [line["event"] for line in lines if line.get("logger") == "httpx"]
    assert 2 == len(requests)
    assert all(f"POST {receiver.url.removesuffix('/hook')}/*** " in r for r in requests)
    assert SLACK_SECRET not in str(lines) + str(raised.value)
