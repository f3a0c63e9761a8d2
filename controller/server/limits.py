"""Request limits: the URL, body size, content type and read time of every request, enforced
before any parsing (`RequestLimits`), and rate limits (`RateLimiter`, `EnrolmentLimits`). The
log rate limit is `controller.logs.LogRateLimit`.

`RequestLimits` is a pure ASGI middleware (no per-request task): a URL holding a control
character (a NUL reaches no database column) is refused with 400; a body announced larger than
the limit is refused with 413 before a byte of it is read; a chunked body is counted as it
arrives and refused once it passes the limit. A body whose Content-Type is not JSON (or
missing) is refused with 415: one its headers announce (Content-Length above 0, or chunked)
before a byte is read, any other once read; a request without a body (no Content-Length and no
Transfer-Encoding, or Content-Length 0) needs no Content-Type. A body is read whole, within
`body_timeout` seconds of its headers, before the app sees it: a client that trickles its body
gets 408 and the connection is closed, so slow clients cannot hold sockets and tasks open
(issue 11.6). The header read timeout and the connection cap live in
`controller.server.transport`, below ASGI.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from controller.server.errors import error_body

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from controller.runtime.settings import Settings

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The answers this middleware gives, for the OpenAPI document (`app.document_limits`).
URL_STATUSES = (400,)
BODY_STATUSES = (408, 413, 415)


NOT_JSON = "send the body as JSON with 'Content-Type: application/json'"


@dataclass(frozen=True, slots=True)
class BodyFraming:
    """What a request's headers say about its body: `length` (Content-Length, None when absent
    or not a number), `chunked` (a Transfer-Encoding), `json` (the Content-Type is JSON)."""

    length: int | None
    chunked: bool
    json: bool

    @classmethod
    def of(cls, headers: list[tuple[bytes, bytes]]) -> BodyFraming:
        """The framing of ASGI `headers` (lowercase names)."""
        length: int | None = None
        chunked = False
        content_type = b""
        for name, value in headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        is_json = content_type == b"application/json" or content_type.endswith(b"+json")
        return cls(length=length, chunked=chunked, json=is_json)

    @property
    def announced(self) -> bool:
        """The headers announce a body: a Content-Length above 0, or a Transfer-Encoding
        (chunked). Without either an HTTP/1.1 request has none (RFC 9112, 6.3): a POST with
        no body and no Content-Length, as curl sends it, is not refused for its type."""
        return self.chunked or bool(self.length)


class _ClientGoneError(Exception):
    """The client disconnected before sending its whole body."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]|%(?:[01][0-9A-Fa-f]|7[Ff])")


class RequestLimits:
    """ASGI middleware: refuse control characters in the URL (400), oversized bodies (413),
    non-JSON POST bodies (415) and bodies slower than `body_timeout` seconds (408)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif _CONTROL.search(scope["path"]) or _CONTROL_BYTES.search(scope["query_string"]):
            await _refuse(send, 400, "the URL holds a NUL or another control character")
        elif scope["method"] in BODY_METHODS:
            await self._with_body(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        framing = BodyFraming.of(scope["headers"])
        if framing.announced and not framing.json:
            await _refuse(send, 415, NOT_JSON)
            return
        if framing.length is not None and framing.length > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        body: bytes | None = b""
        with anyio.move_on_after(self.body_timeout) as deadline:
            try:
                body = await self._read_counted(receive)
            except _ClientGoneError:
                return  # nobody is left to answer
        if deadline.cancelled_caught:
            message = f"the request body did not arrive within {self.body_timeout:g} s"
            await _refuse(send, 408, message)
        elif body is None:
            await _refuse(send, 413, self._too_large())
        elif body and not framing.json:  # a body its headers did not announce: still JSON only
            await _refuse(send, 415, NOT_JSON)
        else:
            await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_body_bytes} bytes"

    async def _read_counted(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, in one message; then the connection's own messages (a
    disconnect), so the app still learns when the client goes away."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send: Send, status: int, message: str) -> None:
    payload = json.dumps(error_body(status, message)).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RateLimiter:
    """Token buckets by key: `burst` calls at once, then one every `1 / rate` seconds.

    `wait(key)` takes a token and answers 0, or answers the seconds until one is free (for
    `Retry-After`) and takes nothing. At most `max_keys` buckets are kept: full ones are dropped
    first, and if every bucket is in use they are all forgotten (a flood of distinct keys then
    costs memory bounded by `max_keys`, at the price of a fresh start for each key).
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def wait(self, key: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _prune(self, now: float) -> None:
        self._buckets = {
            key: (tokens, at)
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate < self.burst
        }
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


@dataclass(frozen=True, slots=True)
class EnrolmentLimits:
    """Enrolment calls per enrolment token and per client address (issue 11.6): a leaked or
    guessed token, or one host in a loop, cannot enrol without bound. The address is the TCP
    peer, or the forwarded client's when the peer is a `serve --trusted-proxy`; behind NAT or
    an untrusted proxy it is shared, and `--enrolments-per-address` should be raised."""

    per_token: RateLimiter
    per_address: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> EnrolmentLimits:
        """`settings.enrolments_per_*` a minute, in bursts of as many."""
        per_token, per_address = settings.enrolments_per_token, settings.enrolments_per_address
        return cls(
            per_token=RateLimiter(rate=per_token / 60, burst=per_token),
            per_address=RateLimiter(rate=per_address / 60, burst=per_address),
        )

    def wait(self, *, token_hash: str, address: str) -> float:
        """0 when the call may go ahead, else the seconds to wait (for `Retry-After`)."""
        return self.per_address.wait(address) or self.per_token.wait(token_hash)
