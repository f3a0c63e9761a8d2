"""The fleet listings in the read API's shape, for the read API and the command line alike.

One function per listing, used by `GET /api/v1/devices|jobs|jobs/{id}|alerts` and by
`patchctl devices|jobs|jobs show|alerts` on the database, so that `--json` prints the same
document locally and with `--server`: camelCase keys, date-times as ISO 8601 text in UTC.

A page is at most `limit` rows; `truncated` says that more rows matched (one row more is read
to know it, never a count of the whole table).

`scope` is a tenant path (that tenant and its clients) or None (every tenant: the command line on
the controller's own database without --tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel

from controller.core.observed import is_online
from controller.kinds.common import tenant_contains
from controller.redaction import redact_text
from controller.runtime import audit
from controller.runtime import status as runtime_status
from controller.store import alerts as alert_store
from controller.store import catalogue
from controller.store import devices as device_store
from controller.store import jobs as job_store

if TYPE_CHECKING:
    from controller.core.patches import PatchRecord
    from controller.kinds.common import OsFamily
    from controller.store import Connection


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one listing (read API shape) and whether more rows matched than `limit`."""

    rows: list[dict[str, Any]]
    truncated: bool


def devices(
    conn: Connection,
    *,
    scope: str | None,
    now: datetime,
    limit: int,
    offset: int = 0,
    include_retired: bool = False,
) -> Page:
    """Devices by tenant then name, each with `online` (the planner's rule, with the device's own
    poll interval) next to `lastSeen`; retired ones only with `include_retired`."""
    rows = device_store.list_devices(
        conn, scope=scope, limit=limit + 1, offset=offset, include_retired=include_retired
    )
    shown = [camel(row) | {"online": online(row, now=now)} for row in rows[:limit]]
    return Page(shown, len(rows) > limit)


def online(device: dict[str, Any], *, now: datetime) -> bool:
    """Whether a device row counts as online at `now` (`core.observed.is_online`)."""
    return is_online(device["last_seen"], timedelta(seconds=device["poll_interval"]), now=now)


def jobs(
    conn: Connection,
    *,
    scope: str | None,
    limit: int,
    offset: int = 0,
    device_id: str | None = None,
    state: str | None = None,
) -> Page:
    """Jobs newest first, each with `deviceName` and its per-patch `results`
    (`{patch id: {result, reason}}`, as the agent reported them)."""
    rows = job_store.list_jobs(
        conn, scope=scope, device_id=device_id, state=state, limit=limit + 1, offset=offset
    )
    shown = rows[:limit]
    names = device_names(conn, {row["device_id"] for row in shown})
    return Page([_job(row, names) for row in shown], len(rows) > limit)


def job(conn: Connection, job_id: str, *, scope: str | None) -> dict[str, Any] | None:
    """One job of the scope with its per-patch results, its output and its events in arrival
    order; None when it does not exist or lies outside the scope (the caller answers 404)."""
    row = job_store.get_job(conn, job_id)
    if row is None or (scope is not None and not tenant_contains(scope, row["tenant"])):
        return None
    events = [
        camel({k: v for k, v in event.items() if k != "dedupe_key"}) | _masked(event["output"])
        for event in job_store.job_events(conn, job_id)
    ]
    shaped = _job(row, device_names(conn, {row["device_id"]}))
    return shaped | _masked(row["output"]) | {"events": events}


def _masked(output: str | None) -> dict[str, str | None]:
    """An agent's output as shown: script output may echo credentials (`redaction`)."""
    return {"output": redact_text(output) if output else output}


def alerts(
    conn: Connection,
    *,
    scope: str | None,
    limit: int,
    offset: int = 0,
    filters: alert_store.AlertFilter | None = None,
) -> Page:
    """Alerts newest first, kept by `filters`; repository-level alerts only count their errors
    (`runtime.status.visible_entry`)."""
    rows = alert_store.list_alerts(
        conn, scope=scope, filters=filters, limit=limit + 1, offset=offset
    )
    shown = [runtime_status.visible_entry(camel(row), kind="kind") for row in rows[:limit]]
    return Page(shown, len(rows) > limit)


def _job(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    shaped = camel(row)
    # the device's name right after its id, so that a reader sees it first
    ordered = {}
    for key, value in shaped.items():
        ordered[key] = value
        if key == "deviceId":
            ordered["deviceName"] = names.get(value)
    return ordered


def device_names(conn: Connection, ids: set[str]) -> dict[str, str]:
    """Device id -> name, for the ids that exist."""
    return device_store.names_of(conn, ids)


_CAMEL_CACHE: dict[str, str] = {}


def camel(row: dict[str, Any]) -> dict[str, Any]:
    """A store row for JSON: camelCase keys, ISO date-times (nested JSON values untouched)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = _CAMEL_CACHE.get(key)
        if name is None:
            name = _CAMEL_CACHE[key] = to_camel(key) if "_" in key else key
        out[name] = runtime_status.iso(value)
    return out


@dataclass(frozen=True, slots=True)
class CataloguePage:
    """Catalogue entries (`patches`), how many matched the filters and the catalogue's size."""

    rows: list[dict[str, Any]]
    matched: int
    total: int

    @property
    def truncated(self) -> bool:
        return self.matched > len(self.rows)


def patches(
    conn: Connection, *, os: OsFamily | None, search: str | None, limit: int
) -> CataloguePage:
    """The patch catalogue by id: one entry per patch id with its affected products, filtered
    by OS family and by a case-insensitive text in the id, title, product or CVE ids."""
    records = catalogue.load_catalogue(conn, os=os)
    found = [r for r in records.values() if _matches(r, search)]
    return CataloguePage([patch_summary(r) for r in found[:limit]], len(found), len(records))


def _matches(record: PatchRecord, search: str | None) -> bool:
    if not search:
        return True
    needle = search.lower()
    haystack = " ".join((record.id, record.title, record.product, *record.cves)).lower()
    return needle in haystack


def patch_summary(record: PatchRecord) -> dict[str, Any]:
    """One catalogue entry as `patchctl patches --json` and `GET /api/v1/patches` show it."""
    return {
        "id": record.id,
        "title": record.title,
        "os": record.os.value if record.os else None,
        "classification": record.classification.value,
        "severity": record.severity.value,
        "released": record.released.isoformat() if record.released else None,
        "rating": record.rating,
        "cves": list(record.cves),
        "products": sorted({b.product for b in record.builds} or ({record.product} - {""})),
        "supersededBy": list(record.superseded_by),
        "withdrawn": record.withdrawn,
    }


def audit_trail(
    conn: Connection,
    *,
    scope: str | None,
    since: datetime | None,
    patch: str | None,
    limit: int,
    lineage: bool = False,
    on_host: bool = False,
) -> dict[str, Any]:
    """The audit trail as `GET /api/v1/audit` and `patchctl audit --json` show it: `trail`
    (per branch: the commit recorded up to, the last valid revision, when) and `events`, oldest
    first (`runtime.audit.query`). For a token (`on_host` False) invalid commits and
    force-pushes count their errors only (`runtime.status.visible_entry`: their files may name
    any tenant); the controller host's own CLI shows the errors."""
    cursors = audit.read_cursors(conn)
    entries = audit.query(conn, scope=scope, since=since, patch=patch, limit=limit, lineage=lineage)
    return {
        "trail": {
            branch: {
                "tip": cursor.tip,
                "validRevision": cursor.valid_revision,
                "syncedAt": runtime_status.iso(cursor.synced_at),
            }
            for branch, cursor in cursors.items()
        },
        "events": [
            _shown({key: runtime_status.iso(value) for key, value in entry.items()}, on_host)
            for entry in entries
        ],
    }


def _shown(entry: dict[str, Any], on_host: bool) -> dict[str, Any]:
    return entry if on_host else runtime_status.visible_entry(entry, kind="type")
