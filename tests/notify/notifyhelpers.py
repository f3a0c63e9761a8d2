"""Values and real local servers for the notification tests.

`Receiver` is a real HTTP server (`http.server` on 127.0.0.1, port 0, in a thread) that records
every request and answers with the status it is told to; `SmtpServer` is a real SMTP server
(aiosmtpd) on 127.0.0.1 that records every message. Only the clock is invented.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from controller.kinds.notifications import AlertSeverity, EventType, Notification
from controller.notify.events import Event

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def event(
    key: str = "k1",
    *,
    kind: EventType = EventType.INSTALL_FAILED,
    severity: AlertSeverity = AlertSeverity.CRITICAL,
    tenant: str | None = "acme/retail",
    message: str = "USN-1 failed on web-01: dpkg error",
) -> Event:
    return Event(key=key, type=kind, severity=severity, message=message, at=T0, tenant=tenant)


def notification(
    name: str = "ops",
    *,
    tenant: str | None = "acme",
    events: tuple[str, ...] = ("InstallFailed", "RebootPending"),
    min_severity: str = "info",
    channel: dict[str, Any] | None = None,
) -> Notification:
    metadata: dict[str, Any] = {"name": name}
    if tenant is not None:
        metadata["tenant"] = tenant
    return Notification.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "Notification",
            "metadata": metadata,
            "spec": {
                "events": list(events),
                "minSeverity": min_severity,
                "channel": channel or {"slack": {"urlEnv": "SLACK_URL"}},
            },
        }
    )


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the local HTTP server received, and how it answers."""

    url: str
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # answers, in turn
    arrived: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.requests)


@contextmanager
def http_receiver(
    status: int = 200,
    delay: float = 0.0,
    *,
    script: list[tuple[int, dict[str, str]]] | None = None,
) -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records POSTs; it answers with the (status,
    headers) of `script` in turn, then with `status`."""
    receiver = Receiver(url="", status=status, delay=delay, script=list(script or ()))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if receiver.delay:
                time.sleep(receiver.delay)
            receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
            answer, headers = receiver.script.pop(0) if receiver.script else (receiver.status, {})
            self.send_response(answer)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def smtp_server(*, password: str | None = None) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; with `password`, AUTH LOGIN/PLAIN required."""
    server = SmtpServer("127.0.0.1", closed_port())

    class Handler:
        async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
            self, _server: Any, _session: Any, envelope: Envelope
        ) -> str:
            server.messages.append(envelope)
            return "250 Message accepted for delivery"

    def authenticate(
        _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, given = data.login.decode(), data.password.decode()
            server.logins.append((user, given))
            return AuthResult(success=given == password, handled=False)
        return AuthResult(success=False, handled=False)

    options: dict[str, Any] = {}
    if password is not None:
        options = {
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(Handler(), hostname=server.host, port=server.port, **options)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
