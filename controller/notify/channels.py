"""The channels: a signed generic webhook, a Slack-compatible incoming webhook, email (SMTP).

Each sender sends one `Message` or raises `DeliveryError`, whose `permanent` flag says whether
trying again can help (a 404 or a missing secret cannot; a timeout or a 503 can). Every network
call has a timeout. Secrets and URLs are read from the environment at send time, so a rotated
secret applies without a restart, and they never appear in an error message.

Webhook receivers verify `X-Patchctl-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body
under the shared secret (`verify_signature` is the reference). The body carries `sentAt` too,
the same instant as the `X-Patchctl-Timestamp` header, so the timestamp is covered by the
signature and receivers can refuse stale replays. Delivery is at least once: every event in
the body has a stable `id` (`X-Patchctl-Event-Id` too, for a single event) to drop duplicates by.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from controller import __version__, errors
from controller.core import retries
from controller.kinds.common import address_of
from controller.kinds.notifications import Channel
from controller.notify.messages import Message
from controller.notify.settings import SmtpSettings
from controller.redaction import remember_secret

DEFAULT_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Patchctl-Signature"
TIMESTAMP_HEADER = "X-Patchctl-Timestamp"
EVENT_HEADER = "X-Patchctl-Event"
DELIVERY_HEADER = "X-Patchctl-Delivery"
EVENT_ID_HEADER = "X-Patchctl-Event-Id"  # a single event's stable id; digests list them in the body
DIGEST_IDS = 50  # event ids an email header lists (a digest's text lists as many events)
SLACK_TEXT_LIMIT = 3900  # Slack truncates longer `text`; keep the end readable instead


class DeliveryError(errors.RemoteError):
    """A message was not delivered; `permanent` when retrying cannot help; `retry_after` the
    wait the receiver asked for (its `Retry-After` header), if it did."""


class Sender(Protocol):
    """Sends one message, or raises DeliveryError."""

    def send(self, message: Message) -> None: ...


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether a received signature header matches the body (constant-time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _env(environ: Mapping[str, str], name: str, what: str) -> str:
    """A secret from the environment, remembered so that no log line or message can show it."""
    value = environ.get(name, "")
    if not value:
        raise DeliveryError(f"{what}: environment variable {name} is not set", permanent=True)
    remember_secret(value)
    return value


def _post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    clock: Callable[[], datetime],
) -> None:
    host = urlsplit(url).hostname or "?"
    try:
        response = httpx.post(
            url, content=body, headers=dict(headers), timeout=timeout, follow_redirects=False
        )
    except httpx.TimeoutException:
        raise DeliveryError(f"{host}: timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{host}: {type(exc).__name__}: {_reason(exc)}") from None
    if response.is_success:
        return
    code = response.status_code
    permanent = 400 <= code < 500 and not retries.is_retryable(code)
    retry_after = retries.parse_retry_after(response.headers.get("Retry-After"), now=clock())
    text = f"{host}: HTTP {code} {response.reason_phrase}"
    if retry_after is not None and not permanent:
        text += f" (retry after {retry_after.total_seconds():g}s)"
    raise DeliveryError(text, permanent=permanent, retry_after=retry_after)


def _reason(exc: Exception) -> str:
    """An exception's text with any URL (which may hold a token) cut out."""
    text = str(exc).split(" for url ", 1)[0]
    return text.replace("\n", " ")[:200] or type(exc).__name__


class WebhookSender:
    """A JSON POST per message, HMAC-signed when the channel names a secret."""

    def __init__(
        self,
        url: str,
        *,
        secret_env: str | None,
        environ: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.url = url
        self.secret_env = secret_env
        self.environ = environ
        self.timeout = timeout
        self.clock = clock

    def body(self, message: Message, *, sent_at: datetime) -> bytes:
        """The JSON document a receiver gets (the raw bytes that are signed)."""
        document: dict[str, Any] = {
            "version": 1,
            "sender": "patchctl",
            "sentAt": _iso(sent_at),
            "digest": message.digest,
            "subject": message.subject,
            "text": message.text,
            "events": [event.as_json() for event in message.events],
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, message: Message) -> None:
        secret = _env(self.environ, self.secret_env, "webhook secret") if self.secret_env else None
        sent_at = self.clock()
        body = self.body(message, sent_at=sent_at)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"patchctl/{__version__}",
            TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
            EVENT_HEADER: "Digest" if message.digest else message.events[0].type.value,
            DELIVERY_HEADER: hashlib.sha256("\n".join(message.keys).encode()).hexdigest()[:32],
        }
        if not message.digest:
            headers[EVENT_ID_HEADER] = message.events[0].event_id
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret.encode("utf-8"), body)
        _post(self.url, body, headers, timeout=self.timeout, clock=self.clock)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def slack_escape(text: str) -> str:
    """Slack's three control characters, escaped as its message format asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(message: Message) -> str:
    """The `text` of a Slack-compatible message: a bold headline, then the details."""
    if message.digest:
        headline = f"*patchctl: {len(message.events)} events* (rate limit reached)"
        lines = [
            f"• *{e.type.value}* ({e.severity.value}) {slack_escape(e.tenant or '')}: "
            f"{slack_escape(e.message)}"
            for e in message.events[:50]
        ]
        if len(message.events) > 50:
            lines.append(f"• … and {len(message.events) - 50} more")
        text = "\n".join([headline, *lines])
    else:
        event = message.events[0]
        scope = f" {slack_escape(event.tenant)}" if event.tenant else ""
        text = (
            f"*{event.type.value}* ({event.severity.value}){scope}: {slack_escape(event.message)}"
        )
        if event.body:
            text += "\n" + slack_escape(event.body)
    if len(text) > SLACK_TEXT_LIMIT:
        text = text[: SLACK_TEXT_LIMIT - 1] + "…"
    return text


class SlackSender:
    """`{"text": ...}` to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    def __init__(
        self,
        *,
        url_env: str,
        environ: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.url_env = url_env
        self.environ = environ
        self.timeout = timeout
        self.clock = clock

    def send(self, message: Message) -> None:
        # The URL is the credential (whoever has it can post): remembered by `_env`, so it is
        # masked in every log line (httpx logs each request's URL) and message.
        url = _env(self.environ, self.url_env, "Slack webhook URL")
        body = json.dumps({"text": slack_text(message)}, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        _post(url, body, headers, timeout=self.timeout, clock=self.clock)


class EmailSender:
    """An email per message through the configured SMTP server; attachments are attached."""

    def __init__(
        self,
        *,
        to: tuple[str, ...],
        settings: SmtpSettings | None,
        environ: Mapping[str, str],
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self.to = to
        self.settings = settings
        self.environ = environ
        self.clock = clock

    def compose(self, message: Message) -> EmailMessage:
        if self.settings is None:
            raise DeliveryError("no [smtp] settings in patchctl.toml", permanent=True)
        email = EmailMessage()
        email["From"] = self.settings.sender
        email["To"] = ", ".join(self.to)
        email["Subject"] = f"[patchctl] {message.subject}"
        email["Date"] = format_datetime(self.clock().astimezone(UTC))
        email["Message-ID"] = make_msgid(domain=address_of(self.settings.sender).split("@")[-1])
        email[EVENT_ID_HEADER] = ", ".join(e.event_id for e in message.events[:DIGEST_IDS])
        email.set_content(message.text)
        for attachment in message.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            email.add_attachment(
                attachment.data,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return email

    def send(self, message: Message) -> None:
        email = self.compose(message)
        settings = self.settings
        if settings is None:  # compose() refused already; this narrows the type
            return
        password = (
            _env(self.environ, settings.password_env, "SMTP password")
            if settings.password_env
            else None
        )
        try:
            self._deliver(settings, email, password)
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final answer (unknown recipient, refused auth), 4xx is "later"
            raise DeliveryError(
                f"{settings.host}: SMTP {exc.smtp_code} {_smtp_text(exc.smtp_error)}",
                permanent=500 <= exc.smtp_code < 600,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"{settings.host}: recipients refused: {', '.join(sorted(exc.recipients))}",
                permanent=True,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{settings.host}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _deliver(settings: SmtpSettings, email: EmailMessage, password: str | None) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if settings.ssl:
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.starttls:
                client.starttls(context=context)
            if settings.user and password is not None:
                client.login(settings.user, password)
            client.send_message(email)


def _smtp_text(error: bytes | str) -> str:
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
    return text.replace("\n", " ")[:200]


def make_sender(
    channel: Channel,
    *,
    environ: Mapping[str, str],
    smtp: SmtpSettings | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
) -> Sender:
    """The sender for a Notification's channel."""
    if channel.webhook is not None:
        return WebhookSender(
            channel.webhook.url,
            secret_env=channel.webhook.secret_env,
            environ=environ,
            timeout=timeout,
            clock=clock,
        )
    if channel.slack is not None:
        return SlackSender(
            url_env=channel.slack.url_env, environ=environ, timeout=timeout, clock=clock
        )
    if channel.email is None:
        raise ValueError("a channel sets exactly one of webhook, slack or email")
    return EmailSender(to=channel.email.to, settings=smtp, environ=environ, clock=clock)
