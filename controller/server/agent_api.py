"""The calls agents make (DESIGN.md §4): enrol, report, poll jobs, report job events."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import structlog
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from controller.core.observed import JobKind
from controller.server import ingest, models
from controller.server.context import Context, device_principal, services
from controller.server.errors import ApiError, error_body, parse_body
from controller.store import devices, jobs, tokens

if TYPE_CHECKING:
    from datetime import datetime

    from controller.store import Connection

log = structlog.get_logger("patchctl.api")
router = APIRouter(prefix="/api/v1", tags=["agent"])

DevicePrincipal = Annotated[tokens.Principal, Depends(device_principal)]
DeviceId = Annotated[
    str, Path(min_length=1, max_length=64, description="The enrolled device's id.")
]
JobId = Annotated[str, Path(min_length=1, max_length=100)]


def json_body(schema: str) -> dict[str, Any]:
    """The OpenAPI requestBody of a JSON body validated by hand (see `app.document_models`)."""
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


# Every call with a body: malformed (400), too slow (408), too large (413), not JSON (415),
# invalid (422), the service stopping or its database gone (503).
_BODY_ERRORS = (400, 408, 413, 415, 422, 503)


@router.post(
    "/enroll",
    response_model=models.EnrollResponse,
    responses={
        **models.error_responses(*_BODY_ERRORS, 401, 429),
        403: {
            "model": models.ErrorBody,
            "description": "The enrolment token is used up (`token-used-up`): it allowed its "
            "`--max-uses` enrolments already.",
        },
        409: {
            "model": models.ErrorBody,
            "description": "The hostname is enrolled by another machine (another machine id); "
            "an IdentityConflict alert is raised.",
        },
    },
    openapi_extra={"requestBody": json_body("EnrollRequest")},
    summary="Enrol a device with a tenant's enrolment token",
)
async def enroll(request: Request, context: Context) -> models.EnrollResponse | JSONResponse:
    """Re-enrolling the same hostname in the same tenant returns the same device id and a new
    device token (the previous ones are revoked and deleted), unless another machine identity
    enrolled it: then 409, nothing changes, and an IdentityConflict alert is raised.
    Rate-limited per enrolment token and per client address: past the limit, 429 with
    `Retry-After`. An enrolment token created with `--max-uses N` allows N enrolments
    (re-enrolments count); the next one gets 403 `token-used-up`."""
    body = parse_body(models.EnrollRequest, await request.body())
    if context.enrolment_limits is not None:
        wait = context.enrolment_limits.wait(
            token_hash=tokens.hash_secret(body.enrollment_token),
            address=request.client.host if request.client else "",
        )
        if wait:
            return _too_many_enrolments(wait)
    poll = int(context.settings.poll_interval.total_seconds())

    def enrol(
        conn: Connection, now: datetime
    ) -> devices.Enrolled | devices.IdentityConflict | UsedUp | None:
        principal = tokens.authenticate(conn, body.enrollment_token, now=now)
        if principal is None or principal.kind is not tokens.TokenKind.ENROLLMENT:
            return None
        # counted first, atomically (the last use is never taken twice); given back on a refusal
        if not tokens.use_enrolment_token(conn, principal.token_id):
            return UsedUp(*tokens.token_uses(conn, principal.token_id))
        enrolment = devices.Enrolment(
            tenant=principal.tenant,
            hostname=body.hostname,
            os_family=body.os.family.value,
            os_name=body.os.name,
            os_version=body.os.version,
            role=body.role.value,
            agent_version=body.agent_version,
            labels=dict(body.labels),
            machine_id=body.machine_id,
            replace_machine=body.replace_machine,
        )
        enrolled = devices.enrol(conn, enrolment, poll_interval=poll, now=now)
        if isinstance(enrolled, devices.IdentityConflict):
            tokens.use_enrolment_token(conn, principal.token_id, delta=-1)
        return enrolled

    # a device enrolled (or re-enrolled, its started jobs released) is a planner input
    enrolled = await context.writer.call(
        enrol, replans=lambda result: isinstance(result, devices.Enrolled)
    )
    if enrolled is None:
        raise ApiError(
            401, "enrollmentToken: not a valid enrolment token (unknown, revoked or expired)"
        )
    if isinstance(enrolled, UsedUp):
        raise ApiError(
            403,
            f"enrollmentToken: this enrolment token is used up ({enrolled.uses} of "
            f"{enrolled.max_uses} enrolments); create a new one (patchctl token create "
            "--max-uses N)",
            code="token-used-up",
        )
    if isinstance(enrolled, devices.IdentityConflict):
        log.warning(
            "enrolment refused: identity conflict",
            device_id=enrolled.device_id,
            tenant=enrolled.tenant,
            name=enrolled.name,
        )
        raise ApiError(409, f"machineId: {enrolled.message}", code="identity-conflict")
    context.authenticator.forget(enrolled.revoked_hashes)
    context.metrics.enrolments.inc(kind="new" if enrolled.created else "re-enrolment")
    log.info(
        "enrolled",
        device_id=enrolled.device_id,
        tenant=enrolled.token.tenant,
        name=devices.device_name(body.hostname),
        new=enrolled.created,
    )
    return models.EnrollResponse(
        device_id=enrolled.device_id, device_token=enrolled.token.secret, poll_interval=poll
    )


@router.post(
    "/devices/{device_id}/report",
    response_model=None,
    responses={
        200: {"model": models.ReportResponse, "description": "Stored."},
        **models.error_responses(*_BODY_ERRORS, 401, 403, 404),
        409: {
            "model": models.ErrorBody,
            "description": "The report's machineId is not the enrolled machine's "
            "(`identity-conflict`).",
        },
    },
    openapi_extra={
        "requestBody": json_body("ReportRequest"),
        "security": [{"HTTPBearer": []}],
    },
    summary="Report facts, a scan and the package inventory (every report is a heartbeat)",
)
async def report(device_id: DeviceId, request: Request) -> Response:
    """Stored whole in one transaction or not at all. A scan older than the newest one stored
    is ignored (`scan: stale`), the newest one again is a replay (`scan: duplicate`).

    The hot path of the service: `controller.server.ingest` answers it before routing; this
    declaration documents it (and serves it when the fast lane is not installed).
    """
    answer = await ingest.ingest_report(
        services(request),
        device_id=device_id,
        authorization=request.headers.get("authorization", ""),
        raw=await request.body(),
    )
    return Response(json.dumps(answer), media_type="application/json")


@router.get(
    "/devices/{device_id}/jobs",
    response_model=models.JobsResponse,
    responses=models.error_responses(400, 401, 403, 422, 503),
    summary="The jobs the device should run now",
)
async def poll_jobs(
    device_id: DeviceId, principal: DevicePrincipal, context: Context
) -> models.JobsResponse:
    """At-least-once delivery: a job is in every answer until the agent acknowledges it."""
    _own_device(principal, device_id)

    def read() -> list[dict[str, Any]]:
        with context.store.read() as conn:
            return jobs.deliverable_jobs(conn, device_id, now=context.settings.clock())

    found = await anyio.to_thread.run_sync(read)
    if found:
        ids = [job["id"] for job in found]
        # pending and delivered are alike to the planner (neither is taken: `core.jobs`)
        await context.writer.call(
            lambda conn, now: jobs.mark_delivered(conn, ids, now=now), replans=lambda _: False
        )
    poll = context.settings.poll_interval
    if context.controller is not None:  # sooner when the device's window opens or is open
        poll = context.controller.poll_interval(
            device_id, now=context.settings.clock(), default=poll
        )
    return models.JobsResponse(
        jobs=[agent_job(job) for job in found], poll_interval=int(poll.total_seconds())
    )


@router.post(
    "/jobs/{job_id}/events",
    response_model=models.JobEventResponse,
    responses=models.error_responses(*_BODY_ERRORS, 401, 403, 404, 409),
    openapi_extra={"requestBody": json_body("JobEventRequest")},
    summary="Report the progress or result of a job",
)
async def job_event(
    job_id: JobId, request: Request, principal: DevicePrincipal, context: Context
) -> models.JobEventResponse:
    """Idempotent: a replayed event (same state and `seq`, or same content) changes nothing
    and answers `status: duplicate`."""
    body = parse_body(models.JobEventRequest, await request.body())
    device_id = principal.device_id or ""
    event = jobs.JobEvent(
        state=body.job_state,
        seq=body.seq,
        patches=tuple(p.model_dump(exclude_none=True) for p in body.patches),
        reboot_required=body.reboot_required,
        output=body.output,
    )
    result = await context.writer.call(
        lambda conn, now: jobs.record_event(
            conn, device_id=device_id, job_id=job_id, event=event, now=now
        ),
        replans=lambda found: found.replans,
    )
    context.metrics.job_events.inc(state=body.state, status=result.status.value)
    if result.status is jobs.EventStatus.NOT_FOUND:
        raise ApiError(404, f"no job {job_id!r} for this device")
    if result.status is jobs.EventStatus.ILLEGAL:
        raise ApiError(409, f"state: {result.message}")
    if result.status is jobs.EventStatus.INVALID:
        field = result.fault_field or "patches"
        raise ApiError(
            422, f"{field}: {result.message}", details=[{"field": field, "message": result.message}]
        )
    log.info(
        "job event", job_id=job_id, device_id=device_id, state=body.state, status=result.status
    )
    return models.JobEventResponse(
        job_id=job_id,
        state=result.state.value if result.state else body.state,
        status=result.status.value,
    )


@dataclass(frozen=True, slots=True)
class UsedUp:
    """An enrolment token that reached its `max_uses`."""

    uses: int
    max_uses: int | None


def _too_many_enrolments(wait: float) -> JSONResponse:
    seconds = math.ceil(wait)
    log.info("refused", path="/api/v1/enroll", status=429, reason="enrolment rate limit")
    message = f"too many enrolments from this address or with this token; retry in {seconds} s"
    return JSONResponse(error_body(429, message), 429, headers={"Retry-After": str(seconds)})


def _own_device(principal: tokens.Principal, device_id: str) -> None:
    if principal.device_id != device_id:
        raise ApiError(403, f"this device token belongs to another device, not {device_id}")


def agent_job(row: dict[str, Any]) -> models.AgentJob:
    """The agent's view of a stored job."""
    payload = dict(row["payload"] or {})
    reboot = payload.get("reboot")
    if reboot is None and row["kind"] == JobKind.INSTALL.value:
        reboot = "if-required"
    return models.AgentJob(
        id=row["id"],
        kind=row["kind"],
        patches=list(row["patch_ids"] or []),
        reboot=reboot,
        scripts=dict(payload.get("scripts") or {}),
        deadline=row["deadline"],
        revision=row["revision"],
        window_key=row["window_key"],
        payload=payload,
    )
