"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from controller.server import models
from controller.server.context import Context
from controller.server.errors import RETRY_AFTER_SECONDS, error_body
from controller.store import StoreError, history

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
            status = history.get_status(conn)
        source = status.get("source", {}).get("value") or {}
        applied = source.get("lastAppliedRevision") if isinstance(source, dict) else None
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
    response_class=PlainTextResponse,
)
async def metrics(context: Context) -> PlainTextResponse:
    return PlainTextResponse(
        context.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
