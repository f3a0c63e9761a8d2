"""The store → ObservedState: devices, their latest scans, the job ledger and the catalogue.

One query per table and one JSON decode per device, so a fleet of 100,000 devices loads in one
pass. Patch ids are interned, so that 4 million references to 2,000 ids share their strings.

`load` reads the whole store. The reconciler's incremental passes (`controller.runtime.observe`)
read the same thing in pieces: `load_devices` and `load_jobs` for the devices that changed
(`controller.store.changes`), `load_seen` for check-ins, and `assemble` puts the pieces
together exactly as `load` does (devices in id order, jobs in (created_at, id) order).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.core import enrichment, reboots
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobState,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
)
from controller.kinds.common import OsFamily
from controller.store import devices, findings, schema
from controller.store.database import IN_LIST_SIZE, id_chunks

JOB_HORIZON = timedelta(days=35)  # finished jobs older than this no longer inform the planner
_ACTIVE_STATES = tuple(s.value for s in JobState if s.in_flight)
_NEVER = datetime.min.replace(tzinfo=UTC)  # a hand-written job view without a creation time

Notes = tuple[tuple[str, Mapping[str, Any]], ...]  # (patch id, agent entry) for catalogue gaps


@dataclass(frozen=True, slots=True)
class DeviceRows:
    """What the store holds for some devices: their views, scans (devices never scanned have
    none) and the agents' metadata of patches the catalogue lacks (`enrichment`), by id."""

    devices: dict[str, DeviceView]
    scans: dict[str, ScanView]
    notes: dict[str, Notes]


def load(conn: Connection, *, now: datetime) -> ObservedState:
    """Everything the planner needs from the store, as one consistent snapshot.

    The catalogue is the enriched one (`controller.core.enrichment`): supersedence completed
    over the whole catalogue, gaps filled from what agents report; agents' KB spellings are
    mapped to the catalogue's ids.
    """
    view = findings.current_catalogue(conn)
    rows = load_devices(conn, view)
    return assemble(view, rows, tuple(load_jobs(conn, since=now - JOB_HORIZON)))


def load_devices(
    conn: Connection, view: findings.CatalogueView, device_ids: Collection[str] | None = None
) -> DeviceRows:
    """The devices of `device_ids` (None: the whole fleet) that are not retired, in id order;
    an id not found (retired, unknown) is absent from the answer."""
    # Only entries that can add something are worth noting, as the catalogue decides.
    reported = enrichment.ReportedMetadata(view.completed)
    found = DeviceRows({}, {}, {})
    for chunk in id_chunks(device_ids):
        states = devices.load_patch_states(conn, chunk)
        d = schema.devices.c
        query = sa.select(schema.devices).where(d.retired_at.is_(None))
        if chunk is not None:
            query = query.where(d.id.in_(chunk))
        # a retired device is history: never planned, never counted in compliance
        for row in conn.execute(query.order_by(d.id)):
            found.devices[row.id] = _device(row)
            notes: list[tuple[str, Mapping[str, Any]]] = []
            scan = _scan(row, states.get(row.id, {}), view, reported, notes)
            if scan is not None:
                found.scans[row.id] = scan
            if notes:
                found.notes[row.id] = tuple(notes)
    return found


def load_jobs(
    conn: Connection, *, since: datetime, device_ids: Collection[str] | None = None
) -> list[JobView]:
    """The jobs that inform the planner: in flight, or created at or after `since` (the job
    horizon), of `device_ids` (None: every device), in (created_at, id) order."""
    j = schema.jobs.c
    found: list[JobView] = []
    for chunk in id_chunks(device_ids):
        query = sa.select(schema.jobs).where(
            sa.or_(j.state.in_(_ACTIVE_STATES), j.created_at >= since)
        )
        if chunk is not None:
            query = query.where(j.device_id.in_(chunk))
        found += (_job(row) for row in conn.execute(query.order_by(j.created_at, j.id)))
    if device_ids is not None and len(device_ids) > IN_LIST_SIZE:
        found.sort(key=job_order)
    return found


def load_seen(conn: Connection, device_ids: Collection[str]) -> dict[str, datetime]:
    """`last_seen` of `device_ids` (not retired), by id."""
    d = schema.devices.c
    found: dict[str, datetime] = {}
    for chunk in id_chunks(device_ids):
        query = sa.select(d.id, d.last_seen).where(d.retired_at.is_(None))
        if chunk is not None:
            query = query.where(d.id.in_(chunk))
        found.update((row.id, row.last_seen) for row in conn.execute(query))
    return found


def assemble(
    view: findings.CatalogueView, rows: DeviceRows, jobs: tuple[JobView, ...]
) -> ObservedState:
    """The observed state of `rows` (in id order) and `jobs`, with the enriched catalogue."""
    reported = enrichment.ReportedMetadata(view.completed)
    for notes in rows.notes.values():
        for patch_id, entry in notes:
            reported.note(patch_id, entry)
    return ObservedState(
        devices=tuple(rows.devices.values()),
        scans=rows.scans,
        jobs=jobs,
        catalogue=reported.apply(),
    )


def job_order(job: JobView) -> tuple[datetime, str]:
    """The order of the job ledger, as `load_jobs` reads it."""
    return job.created_at or _NEVER, job.id


def _device(row: Any) -> DeviceView:
    family = row.os_family if row.os_family in {f.value for f in OsFamily} else None
    return DeviceView(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        os=OsFamily(family) if family else None,
        os_name=row.os_name,
        os_version=row.os_version,
        role=row.role,
        labels=_labels(row.labels),
        enrolled_at=row.enrolled_at,
        last_seen=row.last_seen,
        poll_interval=timedelta(seconds=row.poll_interval),
    )


def _scan(
    row: Any,
    documents: dict[str, tuple[datetime, list[dict[str, Any]]]],
    view: findings.CatalogueView,
    reported: enrichment.ReportedMetadata,
    notes: list[tuple[str, Mapping[str, Any]]],
) -> ScanView | None:
    """Agent-reported and feed-computed findings merged: missing if either says missing."""
    if row.last_scan_at is None and "feed" not in documents:
        return None
    missing: dict[str, None] = {}
    installed: dict[str, None] = {}
    known = view.completed
    signal = bool(row.reboot_required) or bool(row.kernel_reboot)
    dated: list[tuple[str, datetime | None]] = []  # agent-installed, when the OS signals a reboot
    pending: dict[str, None] = {}
    for source, (_at, entries) in sorted(documents.items()):
        for entry in entries:
            patch_id = sys.intern(str(entry["id"]))
            if patch_id not in known:
                patch_id = sys.intern(
                    enrichment.canonical_id(view.index, patch_id, entry.get("kb"))
                )
            if entry.get("state") == "installed":
                installed[patch_id] = None
                if signal and entry.get("pendingReboot") is True:
                    pending[patch_id] = None
                elif signal and row.reboot_required and source != "feed":
                    dated.append((patch_id, _instant(entry.get("installedAt"))))
            else:
                missing[patch_id] = None
                if source != "feed" and reported.needs(patch_id):
                    notes.append((patch_id, entry))
    # feed documents are stamped by the server when it evaluated them
    scanned_at = row.last_scan_at or max(at for at, _ in documents.values())
    received_at = row.last_scan_received_at if row.last_scan_at is not None else scanned_at
    if dated:
        pending.update(dict.fromkeys(_since_boot(row, dated, scanned_at=scanned_at)))
    return ScanView(
        scanned_at=scanned_at,
        received_at=received_at,
        pending_reboot=tuple(pending),
        reboot_required=signal,
        missing=tuple(p for p in missing if p not in installed),
        installed=tuple(installed),
    )


def _since_boot(
    row: Any, dated: list[tuple[str, datetime | None]], *, scanned_at: datetime
) -> tuple[str, ...]:
    """The agent-installed patches the scan's reboot signal is for (`core.reboots`), with the
    boot time from the device's facts."""
    facts = row.facts if isinstance(row.facts, dict) else {}
    uptime = facts.get("uptime")
    booted = reboots.boot_time(
        last_boot_at=_instant(facts.get("lastBootAt")),
        uptime_seconds=uptime if isinstance(uptime, int) and not isinstance(uptime, bool) else None,
        scanned_at=scanned_at,
    )
    return reboots.installed_since_boot(dated, booted_at=booted, scanned_at=scanned_at)


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 instant as stored (validated with an offset on the way in), else None."""
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _job(row: Any) -> JobView:
    window, _, occurrence = (row.window_key or "").partition("@")
    payload = row.payload if isinstance(row.payload, dict) else {}
    occasion = payload.get("occasion")
    results: dict[str, PatchResult] = {}
    reasons: dict[str, str] = {}
    stored = row.results if isinstance(row.results, dict) else {}
    for patch_id, outcome in stored.items():
        found = outcome if isinstance(outcome, dict) else {}  # an odd entry: skipped, no reason
        result = str(found.get("result", ""))
        results[patch_id] = PatchResult(result) if result in _RESULTS else PatchResult.SKIPPED
        if found.get("reason"):
            reasons[patch_id] = str(found["reason"])
    return JobView(
        id=row.id,
        device_id=row.device_id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        patch_ids=_patch_ids(row.patch_ids),
        window=window or None,
        occurrence=occurrence or (occasion if isinstance(occasion, str) else None),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deadline=row.deadline,
        results=results,
        reasons=reasons,
        reboot_required=bool(row.reboot_required),
        started_at=row.started_at,
        run_timeout=timedelta(seconds=row.run_timeout) if row.run_timeout else None,
        end_reason=row.end_reason,
    )


_RESULTS = {r.value for r in PatchResult}


# Stored JSON is read defensively: a value of another shape (another version's writer, a manual
# edit) reads as absent rather than stopping every pass.
def _labels(stored: Any) -> dict[str, str]:
    if not isinstance(stored, dict):
        return {}
    return {str(k): str(v) for k, v in stored.items() if isinstance(v, str | int | float)}


def _patch_ids(stored: Any) -> tuple[str, ...]:
    if not isinstance(stored, list):
        return ()
    return tuple(str(p) for p in stored if isinstance(p, str | int) and p != "")
