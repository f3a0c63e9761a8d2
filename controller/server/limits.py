"""Request limits enforced before any parsing: body size and content type.

A pure ASGI middleware (no per-request task or buffering when the client sends a
Content-Length, as agents do): a body announced larger than the limit is refused with 413 before
a byte of it is read; a chunked body is counted as it arrives and refused once it passes the
limit. A body whose Content-Type is not JSON (or missing) is refused with 415.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from controller.server.errors import error_body

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLargeError(Exception):
    pass


class RequestLimits:
    """ASGI middleware: refuse oversized bodies (413) and non-JSON POST bodies (415)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        length: int | None = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower()
        has_body = length != 0
        if has_body and not (
            content_type == b"application/json" or content_type.endswith(b"+json")
        ):
            await _refuse(send, 415, "send the body as JSON with 'Content-Type: application/json'")
            return
        if length is not None and length > self.max_body_bytes:
            await _refuse(send, 413, self._too_large())
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        body = await self._read_counted(receive)
        if body is None:
            await _refuse(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body), send)

    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_body_bytes} bytes"

    async def _read_counted(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


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
