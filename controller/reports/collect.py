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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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
from controller.store import devices, reports, schema
from controller.store import status as status_store

INSTALL_DAYS = 30
TREND_DAYS = 400  # a little more than a year of daily points
TREND_KEY_PREFIX = "trend:"
_CHUNK = 500
_FINISHED = ("succeeded", "failed")
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


def _in_scope(column: sa.ColumnElement[str], tenant: str | None) -> sa.ColumnElement[bool]:
    if tenant is None:
        return sa.true()
    return sa.or_(column == tenant, column.like(tenant + "/%"))


def _device_rows(conn: Connection, *, tenant: str | None) -> tuple[DeviceRow, ...]:
    c, d = schema.compliance.c, schema.devices.c
    stored = conn.execute(
        sa.select(
            c.device_id,
            c.baseline,
            c.tenant,
            c.state,
            c.revision,
            c.evaluated_at,
            c.patches,
            d.name,
            d.os_family,
            devices.reboot_pending().label("reboot_required"),
        )
        .join(schema.devices, d.id == c.device_id)
        .where(_in_scope(c.tenant, tenant))
        .order_by(c.tenant, d.name, c.baseline)
    ).all()
    patch_ids = {
        pid for row in stored for key, _ in _FINDING_KEYS for pid in _ids(row.patches, key)
    }
    severities = _severities(conn, patch_ids, {row.device_id for row in stored})
    failed = {row.device_id for row in stored if _ids(row.patches, "failed")}  # need the ledger
    reasons = _failure_reasons(conn, sorted(failed))
    return tuple(_device_row(row, severities, reasons) for row in stored)


def _device_row(
    row: Any,
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
    p = schema.patches.c
    found: dict[tuple[str, str], Severity] = {}
    for chunk in _chunks(sorted(patch_ids)):
        for pid, severity in conn.execute(sa.select(p.id, p.severity).where(p.id.in_(chunk))):
            parsed = Severity.parse(severity)
            if parsed is not Severity.UNSPECIFIED:
                found[("", pid)] = parsed
    unknown = patch_ids - {pid for _, pid in found}
    if not unknown:
        return found
    s = schema.patch_states.c
    for chunk in _chunks(sorted(device_ids)):
        documents = conn.execute(
            sa.select(s.device_id, s.patches).where(s.device_id.in_(chunk), s.source == "agent")
        )
        for device_id, document in documents:
            # The stored scan form is {"missing": [{"id", "severity"?, ...}], "installed": [...]}:
            # read it through the store's one reader, never by iterating the raw document.
            for entry in reports.patch_entries(document):
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
    j = schema.jobs.c
    finished = sa.func.coalesce(j.finished_at, j.updated_at)
    reasons: dict[tuple[str, str], str] = {}
    for chunk in _chunks(device_ids):
        rows = conn.execute(
            sa.select(j.device_id, j.results)
            .where(
                j.device_id.in_(chunk), j.kind == "install", j.state.in_(["succeeded", "failed"])
            )
            .order_by(finished, j.id)
        )
        for device_id, results in rows:  # oldest first: a later failure overwrites
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
    d = schema.devices.c
    flagged = conn.execute(
        sa.select(d.id, d.name, d.tenant, d.last_scan_at).where(
            _in_scope(d.tenant, tenant), devices.reboot_pending()
        )
    )
    for device_id, name, device_tenant, scanned_at in flagged:
        if device_id not in found:
            found[device_id] = PendingReboot(device_id, name, device_tenant, (), scanned_at)
    return tuple(sorted(found.values(), key=lambda r: (r.tenant, r.device, r.device_id)))


def _installs(conn: Connection, *, tenant: str | None, now: datetime) -> tuple[InstallDay, ...]:
    """Installed and failed patches per UTC day, for the last 30 days (today included)."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=INSTALL_DAYS - 1)
    j = schema.jobs.c
    finished = sa.func.coalesce(j.finished_at, j.updated_at)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rows = conn.execute(
        sa.select(j.finished_at, j.updated_at, j.results).where(
            j.kind == "install",
            j.state.in_(_FINISHED),
            _in_scope(j.tenant, tenant),
            finished >= start,
            finished <= now,
        )
    )
    days = {first + timedelta(days=n): [0, 0] for n in range(INSTALL_DAYS)}
    for finished_at, updated_at, results in rows:
        moment = finished_at or updated_at
        day = days.get(moment.astimezone(UTC).date())
        if day is None:
            continue
        for outcome in (results if isinstance(results, dict) else {}).values():
            result = outcome.get("result") if isinstance(outcome, dict) else None
            if result == "installed":
                day[0] += 1
            elif result == "failed":
                day[1] += 1
    return tuple(InstallDay(day, installed, failed) for day, (installed, failed) in days.items())


def _trend(
    conn: Connection, *, tenant: str | None, now: datetime, today: float | None, keep: bool
) -> tuple[TrendPoint, ...]:
    """The stored daily points with today's replaced by the current figure (and saved)."""
    key = trend_key(tenant)
    stored = conn.execute(
        sa.select(schema.status.c.value).where(schema.status.c.key == key)
    ).scalar()
    points = trend_points(stored)
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


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def pending_from_plan(devices: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """Device id → patches pending approval, from a Plan's `devices` (`DeviceSummary` values)."""
    return {d.device_id: tuple(d.pending_approval) for d in devices if d.pending_approval}
