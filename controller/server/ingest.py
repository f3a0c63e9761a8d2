"""The report-ingest path, the service's hottest: shared logic and a routing-free fast lane.

`ingest_report` is what `POST /api/v1/devices/{id}/report` does. `ReportFastPath` is a pure
ASGI middleware that answers that one call without FastAPI's routing, dependency injection and
response machinery (several hundred microseconds a request, more than the work itself); every
other request passes through untouched. The FastAPI route stays declared, so the call is in the
OpenAPI document, and it runs the same `ingest_report` when the fast lane is not installed.
The request limits (body size, content type) run before the fast lane.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import structlog

from controller.core import clocks
from controller.server import errors, models
from controller.server.errors import ApiError, error_body, parse_body
from controller.server.reports import to_report
from controller.store import tokens

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping
    from datetime import datetime

    from controller.server.context import Services

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("patchctl.api")
ROUTE = "/api/v1/devices/{device_id}/report"
_PATH = re.compile(r"/api/v1/devices/([^/]{1,64})/report")


async def ingest_report(
    context: Services, *, device_id: str, authorization: str, raw: bytes
) -> dict[str, Any]:
    """Authenticate, validate and store one report; the answer body, or ApiError."""
    scheme, _, secret = authorization.partition(" ")
    principal = await context.principal(
        secret.strip() if scheme.lower() == "bearer" else None, needed=tokens.TokenKind.DEVICE
    )
    if principal.device_id != device_id:
        raise ApiError(403, f"this device token belongs to another device, not {device_id}")
    body = parse_body(models.ReportRequest, raw)
    _bound_scan_time(body, now=context.settings.clock())
    # A stopping writer or an unreachable database is a 503 with Retry-After (errors.unavailable)
    outcome = await context.writer.report(to_report(device_id, body))
    if outcome.conflict is not None:
        raise ApiError(
            409,
            f"facts.machineId: this device is enrolled by machine {outcome.conflict}, and this "
            "report comes from another one (a clone with the original's agent state?); enrol "
            "this machine with its own hostname and a fresh agent state",
            code="identity-conflict",
        )
    if not outcome.known:
        raise ApiError(404, f"device {device_id} is not enrolled")
    context.metrics.reports.inc(scan=outcome.scan.value)
    return {
        "accepted": True,
        "scan": outcome.scan.value,
        "pollInterval": int(context.settings.poll_interval.total_seconds()),
        "serverTime": context.settings.clock().isoformat(),
    }


def _bound_scan_time(body: models.ReportRequest, *, now: datetime) -> None:
    """Refuse (422, nothing stored) a scan dated beyond the server's clock plus the allowed
    skew (`core.clocks`): stored, it would count as the newest scan and make every correct
    one after it look older. Refusing tells the agent at once; clamping would hide its clock."""
    if body.scan is None or not clocks.is_ahead(body.scan.scanned_at, now=now):
        return
    skew = int(clocks.MAX_CLOCK_SKEW.total_seconds() // 60)
    field = "scan.scannedAt"
    message = (
        f"{body.scan.scanned_at.isoformat()} is later than the server's clock "
        f"({now.isoformat()}) by more than {skew} minutes: the device's clock is wrong; "
        "correct it (NTP) and scan again"
    )
    raise ApiError(
        422,
        f"{field}: {message}",
        code="clock-skew",
        details=[{"field": field, "message": message}],
    )


class _RouteLabel:
    """Stands in for the matched route in the ASGI scope (the metrics read `.path`)."""

    path = ROUTE


class ReportFastPath:
    """ASGI middleware: `POST /api/v1/devices/{id}/report` without the framework's routing."""

    def __init__(self, app: ASGIApp, *, context: Services) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _RouteLabel
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            raw = await _read_body(receive)
            answer = await ingest_report(
                self.context, device_id=match.group(1), authorization=authorization, raw=raw
            )
        except ApiError as exc:
            log.info("refused", path=scope["path"], status=exc.status, reason=exc.message)
            body = error_body(exc.status, exc.message, code=exc.code, details=exc.details)
            await _send_json(send, exc.status, body)
            return
        except Exception as exc:
            answer_503 = errors.unavailable(exc)
            if answer_503 is None:
                raise
            response = errors.unavailable_response(scope["path"], exc, answer_503)
            await response(scope, receive, send)
            return
        await _send_json(send, 200, answer)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ApiError(400, "the client went away before sending the whole body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
