"""The error format of the API, and the handlers that produce it.

Every 4xx and 5xx answer is a JSON object:

    {"error": "invalid-request", "message": "scan.missing[0].id: Field required",
     "details": [{"field": "scan.missing[0].id", "message": "Field required"}]}

`error` is a stable code for programs, `message` a sentence for people (it names the field),
`details` lists every field problem of a 422.

When the database cannot answer (refused or lost connection, pool exhausted, the store closed),
every endpoint answers 503 `database-unavailable` with a `Retry-After` header, never a 500; any
other wait-until or transient patchctl error (`controller.errors`: the service stopping, a
lease another replica holds) is a 503 `unavailable` with its own `Retry-After` when it names one.
`unavailable(exc)` is the one place that decides it, for the routes (through `install`) and for
the middleware that answer reports without routing.
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic_core
import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from controller import errors, jsontext
from controller.kinds.common import independent_errors
from controller.redaction import redact_text
from controller.server.writer import WriterClosedError
from controller.store import StoreError
from controller.vocabularies import pattern_meaning

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastapi import FastAPI, Request

log = structlog.get_logger("patchctl.api")
M = TypeVar("M", bound=BaseModel)

_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "timeout",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "too-many-requests",
    500: "internal-error",
    501: "not-implemented",
    503: "unavailable",
}
DATABASE_UNAVAILABLE = "database-unavailable"
RETRY_AFTER_SECONDS = 5  # what a client is told to wait when the database or service is away
# The database is away, not the request at fault: connection refused or lost, pool exhausted.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    StoreError,
)


class ApiError(errors.NeedsHumanError):
    """An answer other than success; raised by handlers, rendered by `install`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.details = details
        self.headers = headers


def unavailable(exc: BaseException) -> ApiError | None:
    """The 503 answer (with Retry-After) for an exception saying the database or the service
    cannot answer now; None for any other exception."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    connection_lost = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    if isinstance(exc, DATABASE_ERRORS) or connection_lost:
        return ApiError(
            503,
            f"the database is unavailable; retry in {RETRY_AFTER_SECONDS} seconds",
            code=DATABASE_UNAVAILABLE,
            headers=retry,
        )
    if _passes_with_time(exc):  # the service is stopping, another replica holds the lease...
        wait = errors.retry_after_of(exc)
        if wait is not None:
            retry = {"Retry-After": str(max(ceil(wait.total_seconds()), 1))}
        return ApiError(503, f"{exc}; retry later", headers=retry)
    return None


def _passes_with_time(exc: BaseException) -> bool:
    """A patchctl error of kind wait-until or transient (`controller.errors`): the client may
    ask again; a needs-a-human error or another exception escaping a route is a 500."""
    return isinstance(exc, errors.PatchctlError) and errors.kind_of(exc) in {
        errors.Kind.WAIT_UNTIL,
        errors.Kind.TRANSIENT,
    }


def database_reason(exc: BaseException) -> str:
    """The first line of a database error's cause, redacted: for the log, never the answer."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    return redact_text(text.splitlines()[0] if text else type(exc).__name__)


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code or _CODES.get(status, "error"), "message": message}
    if details:
        body["details"] = details
    return body


def field_path(loc: Sequence[str | int]) -> str:
    """`('body', 'scan', 'missing', 0, 'id')` -> `scan.missing[0].id`; query and path keep
    their parameter name."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def validation_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    details = []
    for error in independent_errors(errors):
        field = field_path(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            message = f"malformed JSON: {error.get('ctx', {}).get('error', error.get('msg'))}"
            field = ""
        elif error.get("type") in {"model_type", "model_attributes_type"} and not field:
            message = "the request body must be a JSON object"
        elif error.get("type") == "extra_forbidden":
            message = "unknown field"
        elif error.get("type") == "string_pattern_mismatch":  # a sentence, not the regex
            pattern = str((error.get("ctx") or {}).get("pattern"))
            message = f"{error.get('input')!r} {pattern_meaning(pattern)}"
        else:
            message = str(error.get("msg", "invalid"))
        details.append({"field": field, "message": message})
    return details


def summary(details: list[dict[str, str]]) -> str:
    first = details[0]
    text = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    more = len(details) - 1
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON request body straight from bytes (pydantic parses the JSON itself, the
    fastest path); raise ApiError 400 for a body that is not standard JSON (RFC 8259: malformed,
    or holding NaN/Infinity, which pydantic's parser accepts) and 422 for a body that does not
    fit the model, holds a NUL character (no database column can store one) or names a member
    of an object twice (`controller.jsontext`: pydantic would keep the last silently)."""
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        details = validation_details(errors)
        status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
        # NaN and Infinity reach validation as floats, which the strict request models refuse
        # (`allow_inf_nan=False`, no untyped fields): so only a failed body can hold them.
        nonstandard = None if status == 400 else _nonstandard_json(raw)
        if nonstandard is not None:
            status, details = 400, [{"field": "", "message": nonstandard}]
        raise ApiError(status, summary(details), details=details) from None
    if b"\\u0000" in raw:  # rare: only then parse again to find the field
        field = _nul_field(pydantic_core.from_json(raw), ())
        if field is not None:
            details = [{"field": field, "message": "NUL characters (\\u0000) are not allowed"}]
            raise ApiError(422, summary(details), details=details)
    repeated = jsontext.duplicate_key(raw)
    if repeated is not None:
        details = [{"field": field_path(repeated.location), "message": str(repeated)}]
        raise ApiError(422, summary(details), details=details)
    return body


def _nonstandard_json(raw: bytes) -> str | None:
    try:
        pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        return f"malformed JSON: NaN, Infinity and -Infinity are not JSON numbers ({exc})"
    return None


def _nul_field(value: Any, loc: tuple[str | int, ...]) -> str | None:
    """The path of the first key or string holding a NUL character, else None."""
    if isinstance(value, str):
        return field_path(loc) if "\x00" in value else None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            if "\x00" in key:
                return field_path(loc) or "(a key of the body)"
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _nul_field(item, (*loc, key))
        if found is not None:
            return found
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that render every error in the format above."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
        log.info("refused", path=request.url.path, status=exc.status, reason=exc.message)
        body = error_body(exc.status, exc.message, code=exc.code, details=exc.details)
        return JSONResponse(body, exc.status, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = exc.errors()
        details = validation_details(errors)
        message = summary(details) if details else "invalid request"
        # Malformed JSON is a 400 (the body is not JSON at all); a JSON body that does not fit
        # the schema is a 422.
        status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
        log.info("invalid request", path=request.url.path, status=status, reason=message)
        return JSONResponse(error_body(status, message, details=details), status)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)  # noqa: S101
        message = str(exc.detail) if exc.detail else _CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(
            error_body(exc.status_code, message), exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(WriterClosedError, _on_unavailable)
    for error in (*DATABASE_ERRORS, sa_exc.DBAPIError):
        app.add_exception_handler(error, _on_unavailable)
    app.add_exception_handler(Exception, _on_crash)


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    answer = unavailable(exc)
    if answer is None:  # a DBAPIError subclass that is the request's fault, not an outage
        return await _on_crash(request, exc)
    return unavailable_response(request.url.path, exc, answer)


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    # Also reached from middleware (outside the routes' handlers): an outage is still a 503.
    answer = unavailable(exc)
    if answer is not None:
        return unavailable_response(request.url.path, exc, answer)
    log.error("internal error", path=request.url.path, exc_info=exc)
    return JSONResponse(error_body(500, "internal error; see the server log"), 500)


def unavailable_response(path: str, exc: BaseException, answer: ApiError) -> JSONResponse:
    """The 503 of `unavailable`, logged once with the cause (which the client is not told)."""
    if answer.code == DATABASE_UNAVAILABLE:
        log.warning("database unavailable", path=path, status=503, reason=database_reason(exc))
    else:
        log.info("unavailable, retry later", path=path, status=503, reason=redact_text(str(exc)))
    body = error_body(answer.status, answer.message, code=answer.code)
    return JSONResponse(body, answer.status, headers=answer.headers)
