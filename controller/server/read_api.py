"""The tenant-scoped read API: devices, jobs, alerts, audit, compliance, status.

A read token belongs to a tenant path: a partner token (`acme`) sees its own devices and every
client's (`acme/retail`, `acme/logistics`); a client token sees only its own. A device outside
the scope answers 404, exactly like one that does not exist. Rows without a tenant (alerts and
audit events that concern every tenant) are visible to every scope.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Path, Query
from pydantic import AfterValidator, BeforeValidator

from controller import __version__
from controller.core import instants
from controller.core.observed import JobState
from controller.kinds.common import TENANT_PATTERN, OsFamily, tenant_contains
from controller.kinds.notifications import AlertSeverity, EventType
from controller.runtime import explaining, listings
from controller.runtime import status as runtime_status
from controller.server import models, queries
from controller.server.context import Context, read_principal
from controller.server.errors import ApiError
from controller.store import alerts as alert_store
from controller.store import compliance as compliance_store
from controller.store import devices, operations, tokens

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.store import Connection

router = queries.strict_router(tags=["read"])
T = TypeVar("T")

ReadPrincipal = Annotated[tokens.Principal, Depends(read_principal)]
Limit = Annotated[int, Query(ge=1, le=5000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
TenantFilter = Annotated[
    str | None,
    Query(pattern=TENANT_PATTERN, description="Narrow to a tenant inside the token's scope."),
]
DeviceFilter = Annotated[
    str | None,
    Query(
        max_length=253,
        description="Only this device: its id, or its name (the host name, case-insensitive).",
    ),
]


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is UTC (the store keeps aware UTC times only); one outside
    `instants.RANGE` is a ValueError (a 422 naming the parameter, not a 500 where a
    computation or the database would overflow)."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    if not instants.in_range(aware):
        raise ValueError(f"must be {instants.RANGE}")
    return aware


def _iso_text(value: object) -> object:
    """A query time is ISO 8601 text: pydantic also reads a number as Unix seconds
    (`?since=0.38` was 1970-01-01T00:00:00.38Z), which the OpenAPI document does not allow."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            f"{value!r} is a number; give an ISO 8601 date-time such as 2026-11-30T12:00:00Z "
            "or a date such as 2026-11-30"
        )
    return value


DeviceRef = Annotated[
    str, Path(min_length=1, max_length=253, description="The device's id, or its name.")
]
Since = Annotated[
    datetime | None,
    BeforeValidator(_iso_text),
    AfterValidator(_utc),
    Query(description="ISO date-time (UTC without an offset); only newer entries."),
]
Until = Annotated[
    datetime | None,
    BeforeValidator(_iso_text),
    AfterValidator(_utc),
    Query(description="ISO date-time (UTC without an offset); older only."),
]

_ERRORS = models.error_responses(401, 403, 422, 503)
# Catalogue fields a patch entry shows; the agent's own metadata fills the ones left empty.
_ENRICHED = (
    "title",
    "vendor",
    "product",
    "classification",
    "severity",
    "released",
    "rating",
    "cves",
    "superseded_by",
    "reboot_required",
    "withdrawn",
    "url",
)


@router.get("/devices", responses=_ERRORS, summary="Devices of the token's tenant scope")
async def list_devices(
    principal: ReadPrincipal,
    context: Context,
    tenant: TenantFilter = None,
    limit: Limit = 500,
    offset: Offset = 0,
    retired: Annotated[
        bool, Query(description="Also list retired devices (they have `retiredAt`).")
    ] = False,
) -> dict[str, Any]:
    """Devices by tenant then name, each with `online` and `lastSeen`; `truncated` is true when
    more devices matched than `limit`."""
    scope = _scope(principal, tenant)
    now = context.settings.clock()
    page = await _read(
        context,
        lambda conn: listings.devices(
            conn, scope=scope, now=now, limit=limit, offset=offset, include_retired=retired
        ),
    )
    return {"scope": scope, "devices": page.rows, "truncated": page.truncated}


@router.get(
    "/devices/{device}",
    responses={**_ERRORS, **models.error_responses(404, 409)},
    summary="One device: facts, inventory summary, compliance and every patch with its state",
)
async def get_device(
    device: DeviceRef, principal: ReadPrincipal, context: Context
) -> dict[str, Any]:
    """`{device}` is the device's id or its name (case-insensitive), as for `patchctl explain`
    and the admin API (`operations.find_device`: an id first, then a name). A name enrolled in
    several tenants of the scope answers 409 naming them (give the id); a device outside the
    scope 404, exactly like one that does not exist."""

    def read(conn: Connection) -> dict[str, Any]:
        try:
            device_id = operations.find_device(conn, device, scope=principal.tenant)["id"]
        except operations.NotFound:
            raise ApiError(
                404, f"no device {device!r} (id or name) in tenant scope {principal.tenant!r}"
            ) from None
        except operations.Refused as exc:
            raise ApiError(409, str(exc)) from None
        return {
            "device": devices.get_device(conn, device_id, scope=principal.tenant),
            "patches": devices.device_patches(conn, device_id),
            "inventory": devices.device_inventory(conn, device_id),
            "compliance": compliance_store.list_compliance(
                conn, scope=principal.tenant, device_id=device_id
            ),
        }

    found = await _read(context, read)
    return camel(found["device"]) | {
        "online": listings.online(found["device"], now=context.settings.clock()),
        "patches": [patch_entry(entry) for entry in found["patches"]],
        "inventory": camel(found["inventory"]) if found["inventory"] else None,
        "compliance": [camel(row) for row in found["compliance"]],
    }


@router.get(
    "/devices/{device_id}/explain",
    responses={**_ERRORS, **models.error_responses(404, 409)},
    summary="Why each patch of a device is or is not required, approved and installable",
)
async def explain_device(
    device_id: Annotated[str, Path(max_length=253, description="Device id or name.")],
    principal: ReadPrincipal,
    context: Context,
    tenant: TenantFilter = None,
) -> dict[str, Any]:
    """The answer of `patchctl explain DEVICE --json` (the same function,
    `runtime.explaining.explain_device`), under the policy revision this service enforces, at
    the service's clock. A name shared by devices of several tenants answers 409 naming them
    (narrow with `tenant`); a device outside the scope answers 404. 503 when this process runs
    without the reconcile loop (`serve --no-reconcile`) or no revision has validated yet."""
    scope = _scope(principal, tenant)
    if context.controller is None:
        raise ApiError(503, "this service runs without the reconcile loop: it holds no policy")
    desired = await anyio.to_thread.run_sync(context.controller.reconciler.enforced_state)
    if desired is None:
        raise ApiError(503, "no valid policy revision to explain against yet")
    now = context.settings.clock()

    def read(conn: Connection) -> dict[str, Any]:
        return explaining.explain_device(conn, desired, device_id, scope=scope, now=now)

    try:
        return await _read(context, read)
    except explaining.DeviceNotFoundError as exc:
        raise ApiError(409 if exc.ambiguous else 404, str(exc)) from None


@router.get("/jobs", responses=_ERRORS, summary="Jobs of the scope, newest first")
async def list_jobs(
    principal: ReadPrincipal,
    context: Context,
    device: DeviceFilter = None,
    state: Annotated[
        JobState | None, Query(description="Only jobs in this state (`JobState`).")
    ] = None,
    tenant: TenantFilter = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Jobs newest first, each with `deviceName` and its per-patch `results`; `truncated` is
    true when more jobs matched than `limit`."""
    scope = _scope(principal, tenant)
    page = await _read(
        context,
        lambda conn: listings.jobs(
            conn, scope=scope, device_id=device, state=state, limit=limit, offset=offset
        ),
    )
    return {"scope": scope, "jobs": page.rows, "truncated": page.truncated}


@router.get(
    "/jobs/{job_id}",
    responses={**_ERRORS, **models.error_responses(404)},
    summary="One job: its device, per-patch results, output and events",
)
async def get_job(
    job_id: Annotated[str, Path(max_length=100)], principal: ReadPrincipal, context: Context
) -> dict[str, Any]:
    """The job as `GET /jobs` lists it, plus `output` (the agent's last output) and `events`
    (every state report in arrival order). 404 for a job outside the token's scope, exactly
    like one that does not exist."""
    found = await _read(context, lambda conn: listings.job(conn, job_id, scope=principal.tenant))
    if found is None:
        raise ApiError(404, f"no job {job_id!r} in tenant scope {principal.tenant!r}")
    return found


@router.get(
    "/alerts",
    responses=_ERRORS,
    summary="Alerts of the scope, newest first, kept by the filters",
    description="Alerts of the token's scope and those that concern every tenant (a policy "
    "that does not validate). Several values of one filter (`?type=InstallFailed&type="
    "RebootPending`) are alternatives; different filters all apply. An unknown query "
    "parameter answers 422. Each alert carries `state` (open / acknowledged / resolved) and "
    "`deviceName`.",
)
async def list_alerts(  # noqa: PLR0913 - one parameter per filter
    *,
    principal: ReadPrincipal,
    context: Context,
    kinds: Annotated[
        list[EventType] | None, Query(alias="type", description="Alert kinds.")
    ] = None,
    severities: Annotated[
        list[AlertSeverity] | None, Query(alias="severity", description="Severities.")
    ] = None,
    states: Annotated[
        list[alert_store.AlertState] | None,
        Query(
            alias="state",
            description="open (neither acknowledged nor resolved), acknowledged, resolved.",
        ),
    ] = None,
    device: Annotated[
        str | None, Query(min_length=1, max_length=253, description="A device id or name.")
    ] = None,
    since: Since = None,
    until: Until = None,
    open_only: Annotated[
        bool,
        Query(alias="open", description="Only unresolved alerts (acknowledged ones included)."),
    ] = False,
    tenant: TenantFilter = None,
    limit: Limit = 500,
    offset: Offset = 0,
) -> dict[str, Any]:
    scope = _scope(principal, tenant)
    if not instants.ordered(since, until):
        raise ApiError(
            422, "until: must be after since", details=[{"field": "until", "message": "<= since"}]
        )
    filters = alert_store.AlertFilter(
        kinds=tuple(kinds or ()),
        severities=tuple(severities or ()),
        states=tuple(states or ()),
        device=device,
        since=since,
        until=until,
        unresolved_only=open_only,
    )
    rows = await _read(
        context,
        lambda conn: alert_store.list_alerts(
            conn, scope=scope, filters=filters, limit=limit + 1, offset=offset
        ),
    )
    return {
        "scope": scope,
        "alerts": [alert_entry(row) for row in rows[:limit]],
        "truncated": len(rows) > limit,
    }


@router.get(
    "/alerts/{alert_id}",
    responses={**_ERRORS, **models.error_responses(404)},
    summary="One alert of the scope (or one that concerns every tenant)",
)
async def get_alert(
    alert_id: Annotated[
        int, Path(ge=1, le=alert_store.MAX_ALERT_ID, description="The alert's number.")
    ],
    principal: ReadPrincipal,
    context: Context,
) -> dict[str, Any]:
    found = await _read(
        context, lambda conn: alert_store.get_alert(conn, alert_id, scope=principal.tenant)
    )
    if found is None:
        raise ApiError(404, f"no alert {alert_id} in tenant scope {principal.tenant!r}")
    return alert_entry(found)


def alert_entry(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row as the read API shows it (repository-level details withheld)."""
    return runtime_status.visible_entry(camel(row), kind="kind")


@router.get(
    "/patches",
    responses=_ERRORS,
    summary="The patch catalogue: one entry per patch id with its affected products",
)
async def list_patches(
    _principal: ReadPrincipal,
    context: Context,
    os: Annotated[OsFamily | None, Query(description="Only this OS family.")] = None,
    search: Annotated[
        str | None,
        Query(max_length=200, description="Case-insensitive text in id, title, product, CVEs."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Entries.")] = 200,
) -> dict[str, Any]:
    """The entries `patchctl patches --json` prints, by id. The catalogue holds public vendor
    advisories (no tenant data), so every read token sees all of it. `matched` counts the
    entries that pass the filters, `total` the catalogue; `truncated` is true when `limit`
    cut the list."""
    page = await _read(
        context, lambda conn: listings.patches(conn, os=os, search=search, limit=limit)
    )
    return {
        "patches": page.rows,
        "matched": page.matched,
        "total": page.total,
        "truncated": page.truncated,
    }


@router.get(
    "/compliance",
    responses=_ERRORS,
    summary="Compliance per device and baseline, as the last reconcile computed it",
)
async def list_compliance(
    principal: ReadPrincipal,
    context: Context,
    device: DeviceFilter = None,
    tenant: TenantFilter = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    scope = _scope(principal, tenant)
    rows = await _read(
        context,
        lambda conn: compliance_store.list_compliance(
            conn, scope=scope, device_id=device, limit=limit, offset=offset
        ),
    )
    return {"scope": scope, "compliance": [camel(row) for row in rows]}


@router.get(
    "/status",
    responses=_ERRORS,
    summary="Controller status and fleet counts of the token's tenant scope",
    description="Device counts of the scope, the applied and attempted revisions, conditions, "
    "pending approvals of the scope's devices, the next occurrence of every window that applies "
    "to the scope, the last reconcile runs and the state of the notification channels of the "
    "scope's Notifications. Policy errors are counted, not quoted: they may name any tenant's "
    "files (`patchctl validate` shows them).",
)
async def status(
    principal: ReadPrincipal, context: Context, tenant: TenantFilter = None
) -> dict[str, Any]:
    scope = _scope(principal, tenant)
    now = context.settings.clock()
    # the scope's own Notifications' channels, under the policy the service enforces; read
    # before the store transaction (it may read git after a restart): a channel of a
    # Notification of every tenant is the operator's and stays on the controller host
    enforced = (
        None
        if context.controller is None
        else await anyio.to_thread.run_sync(context.controller.reconciler.enforced_state)
    )
    channels = runtime_status.scope_channels(enforced, scope)

    def read(conn: Connection) -> dict[str, Any]:
        # each device by its own poll interval, as the planner counts it; read once (every
        # device of the scope)
        agents = runtime_status.agents(conn, now=now, tenant=scope)
        return {
            "devices": {
                "total": devices.count_devices(conn, scope=scope),
                "online": agents["online"],
                "seenLastDay": devices.count_devices(
                    conn, scope=scope, seen_since=now - timedelta(days=1)
                ),
            },
            "compliance": runtime_status.compliance_by_baseline(conn, tenant=scope),
            "patchStatus": runtime_status.patch_status(conn, now=now, tenant=scope),
            "agents": agents,
            "leader": leader(conn),
            "notifications": runtime_status.notification_channels(conn, channels),
        } | runtime_status.tenant_view(conn, scope=scope)

    def leader(conn: Connection) -> dict[str, Any] | None:
        # The holder names a host and a process: it stays on the controller host.
        lease = runtime_status.leader(conn)
        if lease is None:
            return None
        here = context.controller.role()["replica"] if context.controller is not None else None
        shown = {key: lease[key] for key in ("epoch", "expiresAt", "valid")}
        return shown | {"thisReplica": lease["holder"] == here}

    found = await _read(context, read)
    return {"scope": scope, "serverTime": now.isoformat(), "version": __version__} | found


# --- helpers ------------------------------------------------------------------------------------


def _scope(principal: tokens.Principal, tenant: str | None) -> str:
    if tenant is None:
        return principal.tenant
    if not tenant_contains(principal.tenant, tenant):
        raise ApiError(
            403, f"tenant: {tenant!r} is outside this token's scope {principal.tenant!r}"
        )
    return tenant


async def _read(context: Context, query: Callable[[Connection], T]) -> T:
    def run() -> T:
        with context.store.read() as conn:
            return query(conn)

    return await anyio.to_thread.run_sync(run)


camel = listings.camel

_CAMEL_WORD = re.compile(r"_([a-z])")


def patch_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A device's patch for the read API: its state and source, enriched from the catalogue,
    with the agent's own metadata filling what the catalogue lacks."""
    record = entry.get("record") or {}
    details = entry  # the agent's own metadata sits in the entry, next to the id
    out: dict[str, Any] = {
        "id": entry["id"],
        "state": entry["state"],
        "source": entry["source"],
        "observedAt": runtime_status.iso(entry.get("observedAt")),
        "inCatalogue": bool(record),
    }
    if "installedAt" in entry:
        out["installedAt"] = entry["installedAt"]
    for key in _ENRICHED:
        name = _CAMEL_WORD.sub(lambda m: m.group(1).upper(), key)
        value = record.get(key)
        if value in (None, "", [], "unspecified", "other"):
            value = details.get(name, value)
        if value not in (None, "", []):
            out[name] = value
    for key in ("kb", "sizeBytes"):
        if key in details:
            out[key] = details[key]
    return out
