"""What the drill-down pages show, read out of the store for one tenant scope: the alert
browser (`read_alerts`), one alert, the devices page, one device and one job.

Every reader takes the scope and answers None for an id outside it, so a foreign id is
indistinguishable from one that does not exist. The alert query is the read API's
(`store.alert_store.list_alerts`); a device's explanation is `patchctl explain`'s
(`runtime.explaining`), against the policy revision the reconcile loop last loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from controller.core import targets
from controller.core.observed import DeviceView, is_online
from controller.kinds import DeviceGroup
from controller.kinds.common import OsFamily, tenant_contains
from controller.redaction import redact_text
from controller.runtime import explaining
from controller.runtime import status as runtime_status
from controller.server import read_api
from controller.store import alerts as alert_store
from controller.store import compliance as compliance_store
from controller.store import devices, jobs

if TYPE_CHECKING:
    from controller.core.desired import DesiredState
    from controller.core.explain import DeviceExplanation
    from controller.store import Connection

ALERT_ROWS = 200  # the alert browser's page
DEVICE_ROWS = 500  # the devices page shows at most this many (the count says how many match)
DEVICE_JOBS = 25
DEVICE_ALERTS = 25
OUTPUT_EXCERPT = 4000  # characters of a job's stored output shown (its end: where errors are)


class Compliance(StrEnum):
    """A device's compliance over every baseline that targets it: the worst verdict."""

    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    UNKNOWN = "unknown"
    NONE = "none"  # no baseline targets it (no verdict)


class Online(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


_WORST = (Compliance.NON_COMPLIANT, Compliance.UNKNOWN, Compliance.COMPLIANT)


@dataclass(frozen=True, slots=True)
class AlertPage:
    scope: str
    filters: alert_store.AlertFilter
    rows: tuple[dict[str, Any], ...]  # list_alerts rows, newest first
    limit: int = ALERT_ROWS


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceFilter:
    compliance: Compliance | None = None
    online: Online | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    tenant: str
    name: str
    os: str
    online: bool
    last_seen: datetime | None
    last_scan_at: datetime | None
    reboot_required: bool | None
    compliance: Compliance


@dataclass(frozen=True, slots=True)
class DevicesPage:
    scope: str
    filters: DeviceFilter
    rows: tuple[DeviceRow, ...]  # at most DEVICE_ROWS
    matched: int  # how many devices match the filters
    groups: tuple[str, ...]  # group names the scope may filter by (empty: no policy loaded)


@dataclass(frozen=True, slots=True)
class DevicePage:
    device: dict[str, Any]
    online: bool
    compliance: tuple[dict[str, Any], ...]  # per baseline, as the last reconcile wrote it
    patches: tuple[dict[str, Any], ...]  # the read API's patch entries
    explanation: DeviceExplanation | None  # None: no policy revision loaded in this process
    jobs: tuple[dict[str, Any], ...]
    alerts: tuple[dict[str, Any], ...]
    revision: str | None = None

    def verdict(self, patch_id: str) -> str | None:
        """Explain's sentence for a patch, when there is an explanation."""
        if self.explanation is None:
            return None
        return next((p.verdict for p in self.explanation.patches if p.patch_id == patch_id), None)


@dataclass(frozen=True, slots=True)
class JobPage:
    job: dict[str, Any]
    device_name: str
    results: tuple[tuple[str, str, str], ...]  # (patch id, result, reason), by patch id
    output: str | None  # the stored output's last OUTPUT_EXCERPT characters
    output_truncated: bool
    events: tuple[dict[str, Any], ...] = field(default=())


# --- alerts ---------------------------------------------------------------------------------


def read_alerts(conn: Connection, *, scope: str, filters: alert_store.AlertFilter) -> AlertPage:
    rows = alert_store.list_alerts(conn, scope=scope, filters=filters, limit=ALERT_ROWS)
    return AlertPage(scope, filters, tuple(_shown_alert(row) for row in rows))


def read_alert(conn: Connection, alert_id: int, *, scope: str) -> dict[str, Any] | None:
    found = alert_store.get_alert(conn, alert_id, scope=scope)
    return None if found is None else _shown_alert(found)


def _shown_alert(row: dict[str, Any]) -> dict[str, Any]:
    """Repository-level alerts (no tenant) keep their errors to the controller host, as in the
    read API (`runtime.status.visible_entry`)."""
    return runtime_status.visible_entry(dict(row), kind="kind")


# --- devices --------------------------------------------------------------------------------


def read_devices(
    conn: Connection,
    *,
    scope: str,
    filters: DeviceFilter,
    desired: DesiredState | None,
    now: datetime,
) -> DevicesPage:
    """The scope's devices that pass `filters`, by tenant then name. A group filter needs
    `desired` (the caller refuses it without)."""
    verdicts = compliance_store.states_by_device(conn, scope=scope)
    group = filters.group
    rows: list[DeviceRow] = []
    matched = 0
    for device in devices.fleet_rows(conn, scope=scope):
        row = _device_row(device, verdicts.get(device["id"], ()), now=now)
        if filters.compliance is not None and row.compliance is not filters.compliance:
            continue
        if filters.online is not None and row.online != (filters.online is Online.ONLINE):
            continue
        if group is not None and not (desired and _in_group(desired, device, group)):
            continue
        matched += 1
        if len(rows) < DEVICE_ROWS:
            rows.append(row)
    return DevicesPage(scope, filters, tuple(rows), matched, visible_groups(desired, scope))


def visible_groups(desired: DesiredState | None, scope: str) -> tuple[str, ...]:
    """Names of the groups a scope may filter by: its own, its clients' and its partner's (or
    global) ones; never a sibling's."""
    if desired is None:
        return ()
    return tuple(
        sorted(
            {
                g.name
                for g in desired.groups
                if tenant_contains(g.tenant, scope)
                or (g.tenant is not None and tenant_contains(scope, g.tenant))
            }
        )
    )


def worst(states: tuple[str, ...]) -> Compliance:
    """The device's verdict over its baselines: non-compliant, else unknown, else compliant;
    `none` without any verdict."""
    return next((v for v in _WORST if v.value in states), Compliance.NONE)


def _device_row(device: Mapping[str, Any], states: tuple[str, ...], *, now: datetime) -> DeviceRow:
    os_text = " ".join(p for p in (device["os_name"], device["os_version"]) if p)
    return DeviceRow(
        id=device["id"],
        tenant=device["tenant"],
        name=device["name"],
        os=os_text or device["os_family"],
        online=_online(device, now=now),
        last_seen=device["last_seen"],
        last_scan_at=device["last_scan_at"],
        reboot_required=device["reboot_required"],
        compliance=worst(states),
    )


def _online(device: Mapping[str, Any], *, now: datetime) -> bool:
    return is_online(device["last_seen"], timedelta(seconds=device["poll_interval"]), now=now)


def _in_group(desired: DesiredState, device: Mapping[str, Any], name: str) -> bool:
    """The planner's membership rule (`core.targets`): the group as seen from the device's
    tenant, its devices and selector against the device's facts and declared labels."""
    group = desired.visible(DeviceGroup, device["tenant"], name)
    if group is None:
        return False
    return targets.group_contains(group, targets.effective_device(_view(device), desired))


def _view(device: Mapping[str, Any]) -> DeviceView:
    family = device["os_family"]
    labels = device["labels"] if isinstance(device["labels"], dict) else {}
    return DeviceView(
        id=device["id"],
        tenant=device["tenant"],
        name=device["name"],
        os=OsFamily(family) if family in {f.value for f in OsFamily} else None,
        os_name=device["os_name"],
        os_version=device["os_version"],
        role=device["role"],
        labels={str(k): str(v) for k, v in labels.items()},
        enrolled_at=device["enrolled_at"],
        last_seen=device["last_seen"],
        poll_interval=timedelta(seconds=device["poll_interval"]),
    )


def read_device(
    conn: Connection,
    device_id: str,
    *,
    scope: str,
    desired: DesiredState | None,
    now: datetime,
) -> DevicePage | None:
    """One device of the scope with its patches, explain's reasons, jobs and alerts."""
    device = devices.get_device(conn, device_id, scope=scope)
    if device is None:
        return None
    explanation = explaining.explanation_of(conn, desired, device_id, now=now) if desired else None
    return DevicePage(
        device=device,
        online=_online(device, now=now),
        compliance=tuple(compliance_store.list_compliance(conn, scope=scope, device_id=device_id)),
        patches=tuple(read_api.patch_entry(e) for e in devices.device_patches(conn, device_id)),
        explanation=explanation,
        jobs=tuple(jobs.list_jobs(conn, scope=scope, device_id=device_id, limit=DEVICE_JOBS)),
        alerts=tuple(
            _shown_alert(row)
            for row in alert_store.list_alerts(
                conn,
                scope=scope,
                filters=alert_store.AlertFilter(device=device_id),
                limit=DEVICE_ALERTS,
            )
        ),
        revision=desired.revision if desired else None,
    )


# --- jobs -----------------------------------------------------------------------------------


def read_job(conn: Connection, job_id: str, *, scope: str) -> JobPage | None:
    """One job of the scope with its per-patch results, output excerpt and events."""
    job = jobs.get_job(conn, job_id)
    if job is None or not tenant_contains(scope, job["tenant"]):
        return None
    name = devices.names_of(conn, {job["device_id"]}).get(job["device_id"])
    results = job["results"] if isinstance(job["results"], dict) else {}
    rows = tuple(
        (
            str(patch_id),
            str(_field(result, "result")),
            redact_text(str(_field(result, "reason"))),
        )
        for patch_id, result in sorted(results.items())
    )
    output = redact_text(job["output"]) if isinstance(job.get("output"), str) else None
    return JobPage(
        job=job,
        device_name=name or job["device_id"],
        results=rows,
        output=output[-OUTPUT_EXCERPT:] if output else None,
        output_truncated=output is not None and len(output) > OUTPUT_EXCERPT,
        events=tuple(
            event | {"output": redact_text(event["output"]) if event["output"] else None}
            for event in jobs.job_events(conn, job_id)
        ),
    )


def _field(result: Any, key: str) -> Any:
    return (result.get(key) or "") if isinstance(result, dict) else ""
