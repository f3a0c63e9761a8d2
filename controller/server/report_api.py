"""`GET /api/v1/report`: the compliance report of the read token's tenant scope, rendered.

The same files `patchctl report` writes (Markdown, CSV, HTML, JSON; `reports.files`), collected
from the store at the service's clock and stamped with the last applied revision, so an
operator with a read token writes them with `patchctl report --server URL --out DIR` and never
needs the database. Reading records nothing: the compliance trend is kept by the service's own
ReportSchedules and local `patchctl report` runs. Pending approvals are the last reconcile's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query

from controller.kinds.reports import ReportFormat
from controller.reports import collect, report_files
from controller.runtime import status as runtime_status
from controller.server import queries
from controller.server.context import Context
from controller.server.read_api import _ERRORS, ReadPrincipal, TenantFilter, _read, _scope
from controller.store import status as status_store

if TYPE_CHECKING:
    from controller.store import Connection

router = queries.strict_router(tags=["read"])


@router.get(
    "/report",
    responses=_ERRORS,
    summary="The compliance report of the scope, rendered in the requested formats",
)
async def report(
    principal: ReadPrincipal,
    context: Context,
    report_format: Annotated[
        list[ReportFormat] | None,
        Query(alias="format", description="Formats to render (repeat the parameter); all."),
    ] = None,
    tenant: TenantFilter = None,
) -> dict[str, Any]:
    """`{scope, revision, generatedAt, files: {relative path: text}}`: the files
    `patchctl report` would write for this scope (paths under the tenant's directory)."""
    scope = _scope(principal, tenant)
    formats = tuple(dict.fromkeys(report_format or ReportFormat))
    now = context.settings.clock()

    def read(conn: Connection) -> dict[str, Any]:
        stored = status_store.get_status(conn)
        revision = runtime_status.status_value(stored, "source").get("lastAppliedRevision")
        pending = runtime_status.plan_value(stored).get("pendingApprovalsByDevice")
        data = collect(
            conn,
            tenant=scope,
            now=now,
            revision=revision,
            pending_approvals=pending if isinstance(pending, dict) else None,
            keep_trend=False,
        )
        files = report_files(data, formats)
        return {
            "revision": revision,
            "generatedAt": now.isoformat(),
            "files": {path: content.decode("utf-8") for path, content in files.items()},
        }

    return {"scope": scope} | await _read(context, read)
