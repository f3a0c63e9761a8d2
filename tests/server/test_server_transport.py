"""Transport abuse (issue 11.6) against `serve`'s own uvicorn configuration on a real loopback
socket, with both of uvicorn's HTTP parsers: slow headers and slow bodies get 408 and are
disconnected, connections past the cap get 503 at once, and polite clients are served; a POST
without a body needs no Content-Type, one with a body (announced or chunked) must be JSON."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from controller.runtime.settings import Settings
from controller.server import create_app, transport
from controller.store import alerts, schema, tokens
from controller.testing import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from controller.store import Store

TIMEOUT = 0.5  # the header and body deadlines of these tests, in seconds
CAP = 4
HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: patchctl\r\n\r\n"


@pytest.fixture(params=[HttpToolsProtocol, H11Protocol], ids=["httptools", "h11"])
def address(request: pytest.FixtureRequest, sqlite_store: Store) -> Iterator[tuple[str, int]]:
    """`serve`'s uvicorn configuration with short deadlines and a small cap, in a thread."""
    settings = Settings(
        listen=f"127.0.0.1:{free_port()}",
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        max_connections=CAP,
    )
    config = transport.server_config(
        create_app(sqlite_store, settings), settings, log_level="warning", protocol=request.param
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.started, "uvicorn did not start"
    yield settings.host, settings.port
    running.should_exit = True
    thread.join(15)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    sock.settimeout(5)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (5 s at most)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def one_answer(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection: its head, then `content-length` bytes."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def test_polite_clients_are_served(address) -> None:
    """A request sent at once is answered, and the connection stays open for the next one."""
    with connect(address) as sock:
        sock.sendall(HEALTHZ)
        first = one_answer(sock)
        sock.sendall(HEALTHZ)
        second = one_answer(sock)
    assert (200, 200) == (status(first), status(second))


def test_trickled_headers_get_408_and_are_disconnected(address) -> None:
    """Header lines sent every 0.1 s never complete in time: 408, then the socket closes."""
    with connect(address) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for number in range(100):
                time.sleep(0.1)
                sock.sendall(b"x-slow-%d: 1\r\n" % number)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = until_closed(sock)
        elapsed = time.monotonic() - started
    assert 408 == status(answer)
    assert b"did not arrive within 0.5 s" in answer
    assert elapsed < 5 * TIMEOUT


def test_trickled_headers_after_an_answer_get_408(address) -> None:
    """On a kept-alive connection the next request's headers have the same deadline."""
    with connect(address) as sock:
        sock.sendall(HEALTHZ)
        first = one_answer(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for number in range(100):
                time.sleep(0.1)
                sock.sendall(b"x-slow-%d: 1\r\n" % number)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = until_closed(sock)
    assert (200, 408) == (status(first), status(answer))


def test_a_silent_connection_is_closed(address) -> None:
    """A client that connects and sends nothing is answered 408 and disconnected."""
    with connect(address) as sock:
        started = time.monotonic()
        answer = until_closed(sock)
        elapsed = time.monotonic() - started
    assert 408 == status(answer)
    assert elapsed < 5 * TIMEOUT


def test_a_trickled_body_gets_408_and_is_disconnected(address) -> None:
    """A body announced but sent a few bytes at a time is cut off at the body deadline."""
    head = (
        b"POST /api/v1/enroll HTTP/1.1\r\nhost: patchctl\r\n"
        b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    with connect(address) as sock:
        sock.sendall(head)
        try:
            for _ in range(100):
                time.sleep(0.1)
                sock.sendall(b"  ")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = until_closed(sock)
    assert 408 == status(answer)
    assert b"body did not arrive within 0.5 s" in answer


def test_connections_past_the_cap_get_503_at_once(address) -> None:
    """With the cap reached, a new connection gets 503 and is closed; once one goes, the
    service answers again."""
    held = [connect(address) for _ in range(CAP)]
    time.sleep(0.1)  # the server has accepted them all
    try:
        with connect(address) as extra:
            started = time.monotonic()
            refused = until_closed(extra)
            elapsed = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.1)
    with connect(address) as sock:
        sock.sendall(HEALTHZ)
        after = one_answer(sock)
    assert 503 == status(refused)
    assert b"too many open connections" in refused
    assert elapsed < TIMEOUT  # refused on connect, not at the header deadline
    assert 200 == status(after)


def chunked(body: bytes) -> bytes:
    """`body` in one chunk, then the last chunk (RFC 9112, 7.1)."""
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (b"", b"", 200),
        (b"content-length: 0\r\n", b"", 200),
        (b"content-type: application/json\r\ncontent-length: 14\r\n", b'{"reason":"r"}', 200),
        (b"content-type: application/json\r\ntransfer-encoding: chunked\r\n",
         chunked(b'{"reason":"r"}'), 200),
        (b"transfer-encoding: chunked\r\n", chunked(b'{"reason":"r"}'), 415),
        (b"content-type: text/plain\r\ntransfer-encoding: chunked\r\n", chunked(b"r"), 415),
        (b"content-length: 14\r\n", b'{"reason":"r"}', 415),
    ],
    ids=["no-body-no-length", "length-0", "json", "chunked-json", "chunked-untyped",
         "chunked-text", "untyped"],
)  # fmt: skip
def test_an_admin_post_needs_a_json_type_only_with_a_body(
    address: tuple[str, int], sqlite_store: Store, headers: bytes, body: bytes, expected: int
) -> None:
    """`POST …/acknowledge` as curl sends it without a body (no Content-Length) is served like
    one with `Content-Length: 0`; a body, announced or chunked, must be JSON (415, and the
    alert stays open)."""
    now = datetime.now(UTC)
    with sqlite_store.write() as conn:
        alert = alerts.NewAlert(
            kind="InstallFailed", severity="critical", message="m", tenant="acme"
        )
        alerts.add_alert(conn, alert, now=now)
        secret = tokens.create_token(conn, kind=tokens.TokenKind.ADMIN, tenant="acme", now=now)
    head = (
        b"POST /api/v1/alerts/1/acknowledge HTTP/1.1\r\nhost: patchctl\r\n"
        b"authorization: Bearer %s\r\n%s\r\n" % (secret.secret.encode(), headers)
    )
    with connect(address) as sock:
        sock.sendall(head + body)
        answer = one_answer(sock)
    with sqlite_store.read() as conn:
        acknowledged = conn.execute(sa.select(schema.alerts.c.acknowledged_at)).scalar_one()
    assert (expected, expected == 200) == (status(answer), acknowledged is not None)
