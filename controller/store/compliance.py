"""Compliance records: one row per device and baseline, as the last reconcile wrote them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.store import devices, schema
from controller.store.database import id_chunks, in_chunks
from controller.store.scopes import in_scope, is_device

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from sqlalchemy.engine import Connection


def list_compliance(
    conn: Connection,
    *,
    scope: str,
    device_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = schema.compliance.c
    query = sa.select(
        c.device_id, c.baseline, c.tenant, c.state, c.revision, c.evaluated_at, c.patches
    ).where(in_scope(c.tenant, scope))
    if device_id is not None:
        query = query.where(is_device(c.device_id, device_id))
    rows = conn.execute(
        query.order_by(c.tenant, c.device_id, c.baseline).limit(limit).offset(offset)
    )
    return [dict(row) for row in rows.mappings()]


def counts(conn: Connection, *, scope: str | None) -> dict[tuple[str, str, str], int]:
    """Compliance rows of `scope` (None: all) counted by (tenant, baseline, state), in that
    order."""
    c = schema.compliance.c
    rows = conn.execute(
        sa.select(c.tenant, c.baseline, c.state, sa.func.count())
        .where(in_scope(c.tenant, scope))
        .group_by(c.tenant, c.baseline, c.state)
        .order_by(c.tenant, c.baseline, c.state)
    )
    return {(tenant, baseline, state): int(n) for tenant, baseline, state, n in rows}


@dataclass(frozen=True, slots=True)
class DeviceCompliance:
    """One compliance row with its device's name, OS family and reboot flag, as a report
    reads it. `patches` is the stored JSON document (`{"missing": [...], "counts": {...},
    ...}`), as written; the reader checks its shape."""

    device_id: str
    baseline: str
    tenant: str
    state: str
    revision: str
    evaluated_at: datetime
    patches: Any
    name: str
    os_family: str
    reboot_required: bool


def with_devices(conn: Connection, *, scope: str | None) -> list[DeviceCompliance]:
    """The compliance rows of `scope` (None: all) joined to their devices, by tenant, device
    name and baseline; `reboot_required` is `devices.reboot_pending`."""
    c, d = schema.compliance.c, schema.devices.c
    rows = conn.execute(
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
        .where(in_scope(c.tenant, scope))
        .order_by(c.tenant, d.name, c.baseline)
    )
    return [
        DeviceCompliance(**{**row, "reboot_required": bool(row["reboot_required"])})
        for row in rows.mappings()
    ]


def states_by_device(conn: Connection, *, scope: str | None) -> dict[str, tuple[str, ...]]:
    """Device id → the compliance states of its baselines (one per baseline, in no promised
    order), for the devices of `scope` (None: all) that have any."""
    c = schema.compliance.c
    found: dict[str, list[str]] = {}
    query = sa.select(c.device_id, c.state).where(in_scope(c.tenant, scope))
    for device_id, state in conn.execute(query):
        found.setdefault(device_id, []).append(str(state))
    return {device_id: tuple(states) for device_id, states in found.items()}


def stored(
    conn: Connection, *, devices: Collection[str] | None
) -> dict[tuple[str, str], tuple[str, Any]]:
    """The stored compliance of `devices` (None: every device): (device id, baseline) →
    (state, patches document), read in `database.id_chunks`."""
    c = schema.compliance.c
    query = sa.select(c.device_id, c.baseline, c.state, c.patches)
    return {
        (row.device_id, row.baseline): (row.state, row.patches)
        for chunk in id_chunks(devices)
        for row in conn.execute(query if chunk is None else query.where(c.device_id.in_(chunk)))
    }


def devices_with_rows(conn: Connection) -> set[str]:
    """The ids of the devices that have compliance rows (ids only: a million-device fleet's
    set, not its documents)."""
    c = schema.compliance.c
    rows = conn.execute(sa.select(c.device_id).distinct().execution_options(yield_per=10_000))
    return {device_id for (device_id,) in rows}


def replace(
    conn: Connection, *, remove: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]
) -> None:
    """Delete the (device id, baseline) rows `remove` in chunked set-based statements, then
    insert `rows` (compliance table columns) in one executemany."""
    c = schema.compliance.c
    for chunk in in_chunks(remove):
        conn.execute(
            schema.compliance.delete().where(sa.tuple_(c.device_id, c.baseline).in_(chunk))
        )
    if rows:
        conn.execute(schema.compliance.insert(), list(rows))
