"""`GET /api/v1/audit`: the audit trail of the read token's tenant scope.

The same entries as `patchctl audit --json`: policy changes from git (commit, pull request,
signature, access verdict), the controller's own actions (jobs issued, with their revision)
and, with `patch`, the jobs that carried the patch with their results, and its alerts. Oldest
first. Entries without a tenant (global objects, invalid commits, force-pushes) are visible to
every scope, like the other read endpoints (a Tenant document's are its partner's,
`ObjectKey.owner`); invalid commits and force-pushes only count their
errors (`runtime.status.visible_entry`). The service's reconcile loop keeps the trail
synced; `trail` says up to which commit, and when.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query

from controller.runtime import listings
from controller.server import queries
from controller.server.context import Context
from controller.server.read_api import (
    _ERRORS,
    Limit,
    ReadPrincipal,
    Since,
    TenantFilter,
    _read,
    _scope,
)

if TYPE_CHECKING:
    from controller.store import Connection

router = queries.strict_router(tags=["read"])

PatchFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="Only what concerns this patch id, with its jobs, results and alerts.",
    ),
]


@router.get(
    "/audit",
    responses=_ERRORS,
    summary="The audit trail of the scope, oldest first, merged with the controller's actions",
)
async def audit_trail(
    principal: ReadPrincipal,
    context: Context,
    since: Since = None,
    tenant: TenantFilter = None,
    patch: PatchFilter = None,
    limit: Limit = 500,
) -> dict[str, Any]:
    scope = _scope(principal, tenant)

    def read(conn: Connection) -> dict[str, Any]:
        return listings.audit_trail(conn, scope=scope, since=since, patch=patch, limit=limit)

    return {"scope": scope} | await _read(context, read)
