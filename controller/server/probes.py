"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from controller.runtime import status as runtime_status
from controller.server import models
from controller.server.context import Context, Credentials
from controller.server.errors import RETRY_AFTER_SECONDS, error_body
from controller.store import StoreError
from controller.store import status as status_store
from controller.store.tokens import TokenKind

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers; whether this replica leads the reconcile",
    description="`leader` is true on the replica that holds the reconciler lease (it runs the "
    "reconcile loop and the chores); every ready replica serves agents. `replica` names this "
    "process (host:pid:nonce); both are null/false with --no-reconcile.",
    responses=models.error_responses(503),
)
async def readyz(context: Context) -> JSONResponse:
    def check() -> dict[str, Any]:
        context.store.ping()
        with context.store.read() as conn:
            status = status_store.get_status(conn)
        # read as `patchctl status` and the read API's /status read it (one stored value)
        applied = runtime_status.status_value(status, "source").get("lastAppliedRevision")
        # whether this replica leads, not who it is: the probe answers without a token
        role = context.controller.role() if context.controller is not None else {}
        return {
            "status": "ready",
            "database": "ok",
            "lastAppliedRevision": applied,
            "leader": bool(role.get("leader")),
            "epoch": role.get("epoch"),
        }

    try:
        body = await anyio.to_thread.run_sync(check)
    except StoreError as exc:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(error_body(503, str(exc)), 503, headers=retry)
    return JSONResponse(body)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format 0.0.4)",
    description="Without a token: the process's own metrics (HTTP requests, reports, "
    "enrolments, job events, writer), which carry no tenant data. With a read token: also the "
    "fleet metrics of the token's tenant scope (devices, compliance, approvals, reboots, jobs, "
    "install failures, reconcile runs, policy source, notifications; see docs/metrics.md), "
    "computed from the store at most every 15 seconds per scope.",
    response_class=PlainTextResponse,
    responses=models.error_responses(401, 403, 503),
)
async def metrics(credentials: Credentials, context: Context) -> PlainTextResponse:
    text = context.metrics.render()
    if credentials is not None and context.metrics.fleet is not None:
        principal = await context.principal(credentials.credentials, needed=TokenKind.READ)
        text += await anyio.to_thread.run_sync(context.metrics.fleet.render, principal.tenant)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
