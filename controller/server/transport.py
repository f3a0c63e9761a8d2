"""The HTTP transport below ASGI: uvicorn's settings and the two guards uvicorn lacks.

20,000 clients trickling a header line every 5 s once held every file descriptor of `serve`
(issue 11.6): uvicorn closes idle keep-alive connections, but any byte cancels that timer, and
its concurrency limit only answers requests whose headers are complete. So the protocol here
adds, for both of uvicorn's HTTP parsers:

- a header deadline: a request's headers must be complete within `header_timeout` seconds of
  the connection opening or of the previous answer on it, or the client gets `408` and the
  connection is closed;
- a connection cap: past `max_connections` open connections, a new one gets `503` and is
  closed at once, so descriptors stay available for the database, git and `/healthz`.

The body read timeout is an ASGI concern (`controller.server.limits.RequestLimits`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

if TYPE_CHECKING:
    import asyncio

    from controller.runtime.settings import Settings

# The largest request head h11 buffers (uvicorn's default, stated so that it is a decision).
MAX_HEAD_BYTES = 16 * 1024


def _raw_answer(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer in the API's error format, closing the connection."""
    code = {408: "timeout", 503: "unavailable"}[status]
    body = json.dumps({"error": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(
    base: type[asyncio.Protocol], *, header_timeout: float, max_connections: int
) -> type[asyncio.Protocol]:
    """`base` (one of uvicorn's HTTP protocols) with the header deadline and connection cap."""
    too_slow = _raw_answer(
        408, "Request Timeout", f"the request headers did not arrive within {header_timeout:g} s"
    )
    too_many = _raw_answer(503, "Service Unavailable", "too many open connections; retry later")
    parent: Any = base  # uvicorn's protocols are untyped beyond asyncio.Protocol

    class Guarded(parent):  # type: ignore[misc]
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.transport.write(too_many)
                self.transport.close()
                return
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            # Armed before the parent starts a pipelined request, whose new cycle then counts
            # as headers received.
            self._arm_header_deadline()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
            # uvicorn makes a new cycle when a request's headers are complete: if the cycle
            # is still the one seen now when the deadline passes, no headers came in time.
            self._header_deadline = self.loop.call_later(
                header_timeout, self._headers_overdue, self.cycle
            )

        def _headers_overdue(self, cycle_then: object) -> None:
            self._header_deadline = None
            if self.cycle is cycle_then and not self.transport.is_closing():
                self.transport.write(too_slow)
                self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def server_config(
    app: Any,
    settings: Settings,
    *,
    log_level: str,
    protocol: type[asyncio.Protocol] = AutoHTTPProtocol,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's configuration for `serve`: the transport limits of `settings`, uvicorn's own
    logging off (the service logs through structlog) and no access log. `protocol` is
    uvicorn's HTTP parser (httptools when installed, else h11); `options` are further
    `uvicorn.Config` arguments (TLS, trusted proxies), which win over the defaults here."""
    chosen: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": guarded_protocol(
            protocol,
            header_timeout=settings.header_timeout,
            max_connections=settings.max_connections,
        ),
        "log_config": None,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.keep_alive_timeout,
        # No `limit_concurrency`: it counts the same connections, but acts only once a request's
        # headers are complete (a trickling client never gets there); the cap above acts on
        # connect. The listen backlog stays within the cap as well.
        "backlog": min(2048, settings.max_connections),
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    return uvicorn.Config(app, **(chosen | options))
