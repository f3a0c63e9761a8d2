"""The admin API (issue 16 item 4): day-2 write operations with an admin token.

An admin token (`pca_`) belongs to a tenant path like a read token and reaches the same scope (a
partner's covers its clients). Every call here changes one object of that scope and appends an
audit event naming the token (`controller.store.operations`); an object outside the scope answers
404 exactly like one that does not exist. A read token gets 403. Bodies are optional; when sent
they are strict JSON objects (`AdminRequest`), and a field error names the field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio.to_thread
import structlog
from fastapi import Depends, Path, Request
from pydantic import BaseModel, Field

from controller.server import models, queries
from controller.server.context import Context, admin_principal
from controller.server.errors import ApiError, parse_body
from controller.server.read_api import DeviceRef, camel
from controller.store import operations, tokens

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from controller.store import Connection

log = structlog.get_logger("patchctl.api")
router = queries.strict_router(tags=["admin"])
T = TypeVar("T")

AdminPrincipal = Annotated[tokens.Principal, Depends(admin_principal)]
JobId = Annotated[str, Path(min_length=1, max_length=100, description="The job's id.")]
AlertId = Annotated[int, Path(ge=1, le=models.MAX_INT, description="The alert's id.")]
TokenId = Annotated[str, Path(min_length=1, max_length=64, description="The token's id (tok_…).")]
# A retried job waits this long for its agent before it expires (`no-agent`), like a scan.
RETRY_PICKUP = timedelta(hours=1)

_WRITE_ERRORS = models.error_responses(400, 401, 403, 404, 409, 415, 422, 503)
# the body is read by hand (optional: an empty body is `{}`); `app.document_models` adds its schema
_REQUEST_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AdminRequest"}}},
}


class AdminRequest(BaseModel):
    """The optional body of every admin write: why (kept in the audit event)."""

    model_config = models.STRICT

    reason: str = Field(default="", max_length=500, description="Why; recorded in the audit event.")


class RetiredAnswer(BaseModel):
    device_id: str = Field(serialization_alias="deviceId")
    name: str
    tenant: str
    cancelled_jobs: list[str] = Field(serialization_alias="cancelledJobs")


class RotatedAnswer(BaseModel):
    device_id: str = Field(serialization_alias="deviceId")
    name: str
    token_id: str = Field(serialization_alias="tokenId")
    device_token: str = Field(
        serialization_alias="deviceToken",
        description="The new device token, shown only here: write it to the agent's `token` "
        "file and restart the agent (docs/operations.md). The old one no longer works.",
    )


async def _body(request: Request) -> AdminRequest:
    raw = await request.body()
    return parse_body(AdminRequest, raw) if raw.strip() else AdminRequest()


async def _write(
    context: Context,
    operation: Callable[[Connection, datetime], T],
    *,
    replans: bool,
) -> T:
    """Run `operation` through the writer; NotFound becomes 404, Refused 409."""
    try:
        return await context.writer.call(operation, replans=lambda _result: replans)
    except operations.NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except operations.Refused as exc:
        raise ApiError(409, str(exc)) from None


def _operator(principal: tokens.Principal, body: AdminRequest) -> operations.Operator:
    return operations.Operator.of(principal, reason=body.reason)


@router.post(
    "/devices/{device}/retire",
    response_model=RetiredAnswer,
    response_model_by_alias=True,
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Retire a device: cancel its unfinished jobs, revoke its token, keep its history",
)
async def retire_device(
    device: DeviceRef, request: Request, principal: AdminPrincipal, context: Context
) -> RetiredAnswer:
    """The device leaves planning, compliance and the listings (`GET /devices?retired=true`
    still lists it); its jobs, alerts and audit trail stay. Re-enrolling its name brings it back.
    409 when it is retired already."""
    who = _operator(principal, await _body(request))
    done = await _write(
        context,
        lambda conn, now: operations.retire_device(conn, device, who=who, now=now),
        replans=True,
    )
    context.authenticator.forget(list(done.revoked_hashes))
    log.info("device retired", device_id=done.device_id, tenant=done.tenant, actor=who.actor)
    return RetiredAnswer(
        device_id=done.device_id,
        name=done.name,
        tenant=done.tenant,
        cancelled_jobs=list(done.cancelled_jobs),
    )


@router.post(
    "/devices/{device}/rotate-token",
    response_model=RotatedAnswer,
    response_model_by_alias=True,
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Replace a device's token; the new secret is shown once",
)
async def rotate_device_token(
    device: DeviceRef, request: Request, principal: AdminPrincipal, context: Context
) -> RotatedAnswer:
    """The device's old token stops working at once (on every replica within 30 seconds).
    409 for a retired device."""
    who = _operator(principal, await _body(request))
    done = await _write(
        context,
        lambda conn, now: operations.rotate_device_token(conn, device, who=who, now=now),
        replans=False,
    )
    context.authenticator.forget(list(done.revoked_hashes))
    log.info("device token rotated", device_id=done.device_id, actor=who.actor)
    return RotatedAnswer(
        device_id=done.device_id,
        name=done.name,
        token_id=done.token.id,
        device_token=done.token.secret,
    )


@router.post(
    "/jobs/{job_id}/cancel",
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Cancel a job the agent has not finished",
)
async def cancel_job(
    job_id: JobId, request: Request, principal: AdminPrincipal, context: Context
) -> dict[str, Any]:
    """The job ends `cancelled` and leaves the agent's poll answer. A job the agent already
    started may still run to its end on the device; its later events are refused (409). The
    reconciler does not issue the cancelled install again in the same window occurrence.
    409 for a finished job."""
    who = _operator(principal, await _body(request))
    was = await _write(
        context,
        lambda conn, now: operations.cancel_job(conn, job_id, who=who, now=now),
        replans=True,
    )
    return {"id": job_id, "state": "cancelled", "previousState": was.value}


@router.post(
    "/jobs/{job_id}/retry",
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Issue a failed or expired job again, now",
)
async def retry_job(
    job_id: JobId, request: Request, principal: AdminPrincipal, context: Context
) -> dict[str, Any]:
    """A new job (`retryJobId`) with the same kind, patches and payload, delivered at the
    device's next poll, even outside a patch window (the operator asked for it); it expires
    if not picked up within an hour. 409 for a job that is not failed or expired, or that was
    retried already."""
    who = _operator(principal, await _body(request))
    new_id = await _write(
        context,
        lambda conn, now: operations.retry_job(conn, job_id, who=who, now=now, pickup=RETRY_PICKUP),
        replans=True,
    )
    return {"id": job_id, "retryJobId": new_id}


@router.post(
    "/alerts/{alert_id}/acknowledge",
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Acknowledge an alert (it stays unresolved)",
)
async def acknowledge_alert(
    alert_id: AlertId, request: Request, principal: AdminPrincipal, context: Context
) -> dict[str, Any]:
    """Fills `acknowledgedAt` and `acknowledgedBy` (the token). 409 when acknowledged or
    resolved already, or when the alert concerns every tenant (only the controller host's
    operator acts on those)."""
    who = _operator(principal, await _body(request))
    await _write(
        context,
        lambda conn, now: operations.acknowledge_alert(conn, alert_id, who=who, now=now),
        replans=False,
    )
    return {"id": alert_id, "acknowledgedBy": who.actor}


@router.post(
    "/alerts/{alert_id}/resolve",
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Resolve an alert",
)
async def resolve_alert(
    alert_id: AlertId, request: Request, principal: AdminPrincipal, context: Context
) -> dict[str, Any]:
    """Sets `resolvedAt`. 409 when resolved already, or when the alert concerns every tenant."""
    who = _operator(principal, await _body(request))
    await _write(
        context,
        lambda conn, now: operations.resolve_alert(conn, alert_id, who=who, now=now),
        replans=False,
    )
    return {"id": alert_id, "resolved": True}


@router.get(
    "/tokens",
    responses=models.error_responses(401, 403, 503),
    summary="Tokens of the admin token's scope (never their secrets)",
)
async def list_tokens(principal: AdminPrincipal, context: Context) -> dict[str, Any]:
    def read() -> list[dict[str, Any]]:
        with context.store.read() as conn:
            return tokens.list_tokens(conn, scope=principal.tenant)

    rows = await anyio.to_thread.run_sync(read)
    return {"scope": principal.tenant, "tokens": [camel(row) for row in rows]}


@router.post(
    "/tokens/{token_id}/revoke",
    responses=_WRITE_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
    summary="Revoke a token of the scope",
)
async def revoke_token(
    token_id: TokenId, request: Request, principal: AdminPrincipal, context: Context
) -> dict[str, Any]:
    """The token stops working at once here, on other replicas within 30 seconds. 409 when
    revoked already."""
    who = _operator(principal, await _body(request))
    digest = await _write(
        context,
        lambda conn, now: operations.revoke_token(conn, token_id, who=who, now=now),
        replans=False,
    )
    context.authenticator.forget([digest])
    return {"id": token_id, "revoked": True}
