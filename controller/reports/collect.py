"""Read a compliance report out of the store: `collect(conn, tenant=..., now=..., revision=...)`.

What it reads: the `compliance` rows (one per device and baseline, as the last reconcile wrote
them), the devices' names and reboot flags, the patch catalogue's severities (the agent's own
word when the catalogue does not know a patch), the install jobs' results (failure reasons, the
last 30 days per day) and the stored compliance trend. A partner's report covers its clients.

Collecting also keeps the trend: today's share of compliant verdicts is written to the status
table under `trend:<tenant>` (`trend:*` for the whole fleet), so call it inside a write
transaction (`store.write()`), or pass `keep_trend=False` for a read-only look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from controller.core.compliance import ComplianceState, PatchState
from controller.kinds.common import Severity
from controller.reports.model import (
    DeviceRow,
    Finding,
    InstallDay,
    PendingApproval,
    PendingReboot,
    ReportData,
    TrendPoint,
    state_counts,
    summarise,
)
from controller.store import Connection, catalogue, compliance, devices, jobs
from controller.store import status as status_store

INSTALL_DAYS = 30
TREND_DAYS = 400  # a little more than a year of daily points
TREND_KEY_PREFIX = "trend:"
_FINDING_KEYS = (
    ("missing", PatchState.MISSING),
    ("failed", PatchState.FAILED),
    ("pendingReboot", PatchState.INSTALLED_PENDING_REBOOT),
    ("rejected", PatchState.INSTALLED_REJECTED),
)


def trend_key(tenant: str | None) -> str:
    """The status key of a scope's compliance trend."""
    return f"{TREND_KEY_PREFIX}{tenant or '*'}"


def collect(
    conn: Connection,
    *,
    tenant: str | None,
    now: datetime,
    revision: str | None,
    pending_approvals: Mapping[str, Sequence[str]] | None = None,
    keep_trend: bool = True,
) -> ReportData:
    """The report of `tenant` (with its clients; None: every tenant) as the store holds it at `now`.

    `pending_approvals` maps device id → patch ids pending approval, from the last plan; without
    it the report says the figure is not known. `revision` is the policy revision the report is
    stamped with (normally the last applied one).
    """
    rows = _device_rows(conn, tenant=tenant)
    names = {row.device_id: (row.device, row.tenant) for row in rows}
    pending = None
    if pending_approvals is not None:
        pending = tuple(
            PendingApproval(device_id, *names[device_id], tuple(sorted(patches)))
            for device_id, patches in sorted(pending_approvals.items())
            if patches and device_id in names
        )
    percent = state_counts(rows).compliant_percent if rows else None
    trend = _trend(conn, tenant=tenant, now=now, today=percent, keep=keep_trend)
    return ReportData(
        tenant=tenant,
        revision=revision,
        generated_at=now,
        devices=rows,
        baselines=summarise(rows),
        pending_approvals=pending,
        pending_reboots=_pending_reboots(conn, tenant=tenant, rows=rows),
        installs=_installs(conn, tenant=tenant, now=now),
        trend=trend,
    )


# --- steps ----------------------------------------------------------------------------------


def _device_rows(conn: Connection, *, tenant: str | None) -> tuple[DeviceRow, ...]:
    stored = compliance.with_devices(conn, scope=tenant)
    patch_ids = {
        pid for row in stored for key, _ in _FINDING_KEYS for pid in _ids(row.patches, key)
    }
    severities = _severities(conn, patch_ids, {row.device_id for row in stored})
    failed = {row.device_id for row in stored if _ids(row.patches, "failed")}  # need the ledger
    reasons = _failure_reasons(conn, sorted(failed))
    return tuple(_device_row(row, severities, reasons) for row in stored)


def _device_row(
    row: compliance.DeviceCompliance,
    severities: Mapping[tuple[str, str], Severity],
    reasons: Mapping[tuple[str, str], str],
) -> DeviceRow:
    document = row.patches if isinstance(row.patches, dict) else {}
    findings = tuple(
        Finding(
            patch_id=pid,
            state=state,
            severity=severities.get((row.device_id, pid))
            or severities.get(("", pid))
            or Severity.UNSPECIFIED,
            reason=reasons.get((row.device_id, pid)) if state is PatchState.FAILED else None,
        )
        for key, state in _FINDING_KEYS
        for pid in _ids(document, key)
    )
    return DeviceRow(
        device_id=row.device_id,
        device=row.name,
        tenant=row.tenant,
        os=row.os_family,
        baseline=row.baseline,
        state=ComplianceState(row.state),
        evaluated_at=row.evaluated_at,
        revision=row.revision,
        scanned_at=stored_instant(document.get("scannedAt")),
        findings=findings,
        installed=_installed_count(document.get("counts")),
        reboot_pending=bool(row.reboot_required) or bool(_ids(document, "pendingReboot")),
    )


def _ids(document: Any, key: str) -> list[str]:
    """The patch ids listed under `key` of a stored compliance document; whatever is not a list
    of ids there counts as none."""
    listed = document.get(key) if isinstance(document, dict) else None
    if not isinstance(listed, list):
        return []
    return [str(pid) for pid in listed if isinstance(pid, str | int) and pid != ""]


def _installed_count(counts: Any) -> int:
    value = counts.get(PatchState.INSTALLED.value) if isinstance(counts, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def stored_instant(value: Any) -> datetime | None:
    """An instant stored as ISO 8601 text in a JSON document (UTC when it has no offset), or None
    when it is missing or unreadable: a report shows "never" rather than failing."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _severities(
    conn: Connection, patch_ids: set[str], device_ids: set[str]
) -> dict[tuple[str, str], Severity]:
    """Severity by (device, patch): the catalogue's under ("", patch), the agent's per device."""
    found: dict[tuple[str, str], Severity] = {}
    for pid, severity in catalogue.severities(conn, patch_ids).items():
        parsed = Severity.parse(severity)
        if parsed is not Severity.UNSPECIFIED:
            found[("", pid)] = parsed
    unknown = patch_ids - {pid for _, pid in found}
    if not unknown:
        return found
    # The stored scan form is {"missing": [{"id", "severity"?, ...}], "installed": [...]}: read
    # through the store's one reader (`reports.patch_entries`), never the raw document.
    for device_id, entries in devices.agent_entries(conn, device_ids).items():
        for entry in entries:
            pid = str(entry.get("id"))
            severity = _agent_severity(entry)
            if pid in unknown and severity:
                found[(device_id, pid)] = Severity.parse(severity)
    return found


def _agent_severity(entry: Mapping[str, Any]) -> str | None:
    """The agent's severity word of a stored entry: `severity` as the agent API stores it, or
    `details.severity` as older writers did; None when absent or not text."""
    details = entry.get("details")
    for value in (
        entry.get("severity"),
        details.get("severity") if isinstance(details, dict) else None,
    ):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _failure_reasons(conn: Connection, device_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    """The agent's reason of each (device, patch)'s latest failed install."""
    reasons: dict[tuple[str, str], str] = {}
    for device_id, results in jobs.finished_install_results(conn, device_ids):
        # oldest first: a later failure overwrites
        for pid, outcome in (results if isinstance(results, dict) else {}).items():
            if isinstance(outcome, dict) and outcome.get("result") == "failed":
                reasons[(device_id, pid)] = str(outcome.get("reason") or "no reason given")
    return reasons


def _pending_reboots(
    conn: Connection, *, tenant: str | None, rows: Sequence[DeviceRow]
) -> tuple[PendingReboot, ...]:
    """Devices whose OS asks for a reboot, or whose installed patches wait for one."""
    found: dict[str, PendingReboot] = {}
    for row in rows:
        if not row.pending_reboot:
            continue
        known = found.get(row.device_id)
        patches = (*(known.patches if known else ()), *(f.patch_id for f in row.pending_reboot))
        found[row.device_id] = PendingReboot(
            row.device_id, row.device, row.tenant, tuple(dict.fromkeys(patches)), row.scanned_at
        )
    flagged = devices.reboot_pending_devices(conn, scope=tenant)
    for device_id, name, device_tenant, scanned_at in flagged:
        if device_id not in found:
            found[device_id] = PendingReboot(device_id, name, device_tenant, (), scanned_at)
    return tuple(sorted(found.values(), key=lambda r: (r.tenant, r.device, r.device_id)))


def _installs(conn: Connection, *, tenant: str | None, now: datetime) -> tuple[InstallDay, ...]:
    """Installed and failed patches per UTC day, for the last 30 days (today included)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=INSTALL_DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rows = jobs.install_results_by_day(conn, scope=tenant, start=start, end=now)
    days = {first + timedelta(days=n): [0, 0] for n in range(INSTALL_DAYS)}
    for ended, results, times in rows:
        day = days.get(ended)
        if day is None:
            continue
        for outcome in (results if isinstance(results, dict) else {}).values():
            result = outcome.get("result") if isinstance(outcome, dict) else None
            if result == "installed":
                day[0] += times
            elif result == "failed":
                day[1] += times
    return tuple(InstallDay(day, installed, failed) for day, (installed, failed) in days.items())


def _trend(
    conn: Connection, *, tenant: str | None, now: datetime, today: float | None, keep: bool
) -> tuple[TrendPoint, ...]:
    """The stored daily points with today's replaced by the current figure (and saved)."""
    key = trend_key(tenant)
    points = trend_points(status_store.get_value(conn, key))
    if today is not None:
        points[now.astimezone(UTC).date()] = today
    kept = dict(sorted(points.items())[-TREND_DAYS:])
    if keep and today is not None:
        status_store.set_status(
            conn, key, {"points": {day.isoformat(): v for day, v in kept.items()}}, now=now
        )
    return tuple(TrendPoint(day, value) for day, value in kept.items())


def trend_points(stored: Any) -> dict[date, float]:
    """The stored `{"points": {day: percent}}`; unreadable days and values are left out."""
    found = stored.get("points") if isinstance(stored, dict) else None
    points: dict[date, float] = {}
    for day, value in (found if isinstance(found, dict) else {}).items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        try:
            points[date.fromisoformat(str(day))] = float(value)
        except ValueError:
            continue
    return points


def pending_from_plan(devices: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """Device id → patches pending approval, from a Plan's `devices` (`DeviceSummary` values)."""
    return {d.device_id: tuple(d.pending_approval) for d in devices if d.pending_approval}
