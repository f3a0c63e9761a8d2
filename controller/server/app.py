"""The HTTP service's app factory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI
from pydantic import BaseModel

from controller import __version__
from controller.server import (
    admin_api,
    agent_api,
    audit_api,
    dashboard,
    errors,
    hooks,
    models,
    plan_api,
    probes,
    read_api,
    report_api,
)
from controller.server.context import Authenticator, Services
from controller.server.ingest import ReportFastPath
from controller.server.limits import (
    BODY_METHODS,
    BODY_STATUSES,
    URL_STATUSES,
    EnrolmentLimits,
    RequestLimits,
)
from controller.server.metrics import FleetCache, Gauge, Metrics, RequestMetrics
from controller.server.writer import Writer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from controller.runtime.service import Controller
    from controller.runtime.settings import Settings
    from controller.store import Store

DESCRIPTION = """\
The patchctl agent protocol, read API and admin API (DESIGN.md §4, docs/operations.md).

Agents enrol with a tenant's enrolment token, then call with their device token
(`Authorization: Bearer pcd_...`). The read API takes a read token scoped to a tenant path;
the admin API (day-2 writes, each audited) an admin token (`pca_...`), which also reads.
Errors are JSON objects `{error, message, details?}`; request bodies are limited in size.
"""


def create_app(store: Store, settings: Settings, controller: Controller | None = None) -> FastAPI:
    """The FastAPI app over an open store. The app starts its writer on startup and stops it
    (finishing queued writes) on shutdown; with a `controller`, it also starts and stops the
    reconcile loop, and stored writes and the git webhook trigger it. The caller owns and
    closes the store."""
    metrics = Metrics()
    metrics.fleet = FleetCache(store, clock=settings.clock)
    writer = Writer(
        store,
        clock=settings.clock,
        on_change=controller.reports_arrived if controller is not None else None,
    )
    services = Services(
        store=store,
        settings=settings,
        writer=writer,
        metrics=metrics,
        authenticator=Authenticator(store=store, settings=settings),
        controller=controller,
        enrolment_limits=EnrolmentLimits.from_settings(settings),
    )
    metrics.gauges.extend(
        [
            Gauge(
                "patchctl_writer_batches", "Write transactions committed.", lambda: writer.batches
            ),
            Gauge(
                "patchctl_writer_items", "Writes (reports, calls) committed.", lambda: writer.items
            ),
            Gauge(
                "patchctl_writer_changing_batches",
                "Write transactions that changed a planner input (each asked for a pass).",
                lambda: writer.changing,
            ),
        ]
    )
    if controller is not None:
        # whether this replica leads, as /readyz says it without a token (no tenant data)
        metrics.gauges.append(
            Gauge(
                "patchctl_leader",
                "1 while this replica holds the reconciler lease (runs the reconcile loop).",
                lambda: 1.0 if controller.role().get("leader") else 0.0,
            )
        )
        metrics.gauges.append(
            Gauge(
                "patchctl_reconcile_drift_total",
                "Resync passes of this replica whose full read differed from the incremental "
                "observed state (each also logged as an error).",
                lambda: float(controller.loop.reconciler.drift_total),
                kind="counter",
            )
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        if controller is not None:
            controller.start()
        try:
            yield
        finally:
            if controller is not None:  # finishes the pass in progress; off the event loop
                await anyio.to_thread.run_sync(controller.stop)
            await writer.stop()

    app = FastAPI(
        title="patchctl",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # The service exports its own Prometheus metrics; FastAPI's OpenTelemetry hooks would
        # only cost time on every request (they look the providers up each time).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    errors.install(app)
    app.include_router(agent_api.router)
    app.include_router(audit_api.router)  # before read_api: it answers /api/v1/audit
    app.include_router(read_api.router)
    app.include_router(plan_api.router)
    app.include_router(admin_api.router)
    app.include_router(report_api.router)
    app.include_router(probes.router)
    app.include_router(dashboard.router)
    app.include_router(hooks.router)
    app.add_middleware(ReportFastPath, context=services)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
    )
    app.add_middleware(dashboard.LoginForm)  # the sign-in form posts no JSON
    app.add_middleware(RequestMetrics, metrics=metrics)
    document_models(
        app,
        [
            models.EnrollRequest,
            models.ReportRequest,
            models.JobEventRequest,
            models.ErrorBody,
            admin_api.AdminRequest,
        ],
    )
    return app


def document_models(app: FastAPI, bodies: list[type[BaseModel]]) -> None:
    """Add the schemas of bodies that handlers validate by hand to the OpenAPI components,
    and the answers `RequestLimits` gives before any handler runs to every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in bodies:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        document_limits(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def document_limits(document: dict[str, Any]) -> None:
    """Every operation can answer `limits.URL_STATUSES`, and those with a body
    `limits.BODY_STATUSES` too (an `ErrorBody` each)."""
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            statuses: tuple[int, ...] = URL_STATUSES
            if method.upper() in BODY_METHODS:
                statuses += BODY_STATUSES
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(
                    str(status),
                    {
                        "description": models.ERROR_MEANINGS[status],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    },
                )
