"""Devices: enrolment and the tenant-scoped read side (listings, one device with its patches)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core.ids import AlertKey
from controller.core.observed import online_since
from controller.kinds import common
from controller.kinds.notifications import AlertSeverity, EventType
from controller.store import alerts, changes, findings, jobs, reports, schema, tokens
from controller.store.scopes import in_scope

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """What an agent tells about itself when it enrols."""

    tenant: str
    hostname: str
    os_family: str
    os_name: str
    os_version: str
    role: str
    agent_version: str
    labels: dict[str, str] = field(default_factory=dict)
    machine_id: str | None = None  # /etc/machine-id, MachineGuid; None from older agents
    replace_machine: bool = False  # the operator says this machine replaces the enrolled one


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityConflict:
    """Another machine asked for an enrolled device's name (a cloned VM, or a reinstall)."""

    device_id: str
    tenant: str
    name: str
    enrolled_machine_id: str
    machine_id: str

    @property
    def message(self) -> str:
        return (
            f"hostname {self.name!r} is already enrolled in tenant {self.tenant} by another "
            f"machine (machine id {self.enrolled_machine_id}; this one is {self.machine_id}). "
            "A cloned VM needs its own hostname and machine id; a machine that really replaces "
            "the enrolled one enrols with replaceMachine (patchctl-agent enroll --replace)"
        )

    def alert(self) -> alerts.NewAlert:
        return alerts.NewAlert(
            kind=EventType.IDENTITY_CONFLICT.value,
            severity=AlertSeverity.WARNING.value,
            message=self.message,
            tenant=self.tenant,
            device_id=self.device_id,
            details={"enrolledMachineId": self.enrolled_machine_id, "machineId": self.machine_id},
            dedupe_key=AlertKey.of(
                EventType.IDENTITY_CONFLICT, self.device_id, self.machine_id
            ).format(),
        )


@dataclass(frozen=True, slots=True)
class Enrolled:
    device_id: str
    token: tokens.IssuedToken
    created: bool  # False: a re-enrolment of a known hostname
    revoked_hashes: tuple[str, ...]  # the device's previous tokens, now revoked


def device_name(hostname: str) -> str:
    """A device's name: its hostname, lowercased (names are unique per tenant)."""
    return common.device_name(hostname)


def enrol(
    conn: Connection, enrolment: Enrolment, *, poll_interval: int, now: datetime
) -> Enrolled | IdentityConflict:
    """Enrol a device, or re-enrol the one with the same name in the same tenant.

    A re-enrolment keeps the device id (and so its history), refreshes what the agent says about
    itself, revokes the device's previous tokens, releases its started jobs (the new agent
    instance will never report on them: `jobs.release_device_jobs`) and issues a new token.
    When the device is known with another machine identity, nothing changes: the conflict is
    returned and raised as an `IdentityConflict` alert (once per machine), unless the enrolment
    says `replace_machine`, which is allowed and raised as an alert all the same (DESIGN.md §4,
    issue 18.5). Re-enrolling the name of a retired device brings that device back (same id and
    history), from any machine: retiring freed the name (docs/operations.md).
    """

    d = schema.devices.c
    name = device_name(enrolment.hostname)
    tokens.ensure_tenant(conn, enrolment.tenant, now=now)
    found = conn.execute(
        sa.select(d.id, d.machine_id, d.retired_at).where(
            d.tenant == enrolment.tenant, d.name == name
        )
    ).first()
    existing = found.id if found is not None else None
    if (
        found is not None
        and found.retired_at is None  # a retired name is free for any machine
        and found.machine_id
        and enrolment.machine_id
        not in (
            None,
            found.machine_id,
        )
    ):
        conflict = IdentityConflict(
            device_id=found.id,
            tenant=enrolment.tenant,
            name=name,
            enrolled_machine_id=found.machine_id,
            machine_id=str(enrolment.machine_id),
        )
        alerts.add_alert(conn, conflict.alert(), now=now)
        if not enrolment.replace_machine:
            return conflict
    values: dict[str, Any] = {
        "hostname": enrolment.hostname,
        "os_family": enrolment.os_family,
        "os_name": enrolment.os_name,
        "os_version": enrolment.os_version,
        "role": enrolment.role,
        "labels": dict(enrolment.labels),
        "agent_version": enrolment.agent_version,
        "poll_interval": poll_interval,
        "last_seen": now,
        "awaiting_report": True,  # its first report triggers a pass (`reports.write_reports`)
        "retired_at": None,  # re-enrolling a retired device's name brings the device back
    }
    if enrolment.machine_id is not None:
        values["machine_id"] = enrolment.machine_id
    revoked: list[str] = []
    if existing is None:
        device_id = str(uuid.uuid4())
        conn.execute(
            schema.devices.insert().values(
                id=device_id,
                tenant=enrolment.tenant,
                name=name,
                facts={},
                enrolled_at=now,
                last_scan_at=None,
                reboot_required=None,
                **values,
            )
        )
    else:
        device_id = existing
        conn.execute(schema.devices.update().where(d.id == device_id).values(**values))
        revoked = tokens.revoke_device_tokens(conn, device_id)
        jobs.release_device_jobs(conn, device_id, now=now)
    changes.record_devices(conn, [device_id], now=now)
    token = tokens.create_token(
        conn,
        kind=tokens.TokenKind.DEVICE,
        tenant=enrolment.tenant,
        device_id=device_id,
        description=f"device {name}",
        now=now,
    )
    return Enrolled(
        device_id=device_id, token=token, created=existing is None, revoked_hashes=tuple(revoked)
    )


def reboot_pending() -> sa.ColumnElement[bool]:
    """Whether the OS asks the device for a reboot: its last scan's signal, or its running
    kernel older than the newest installed one (`kernel_reboot`). The one SQL form of the
    rule that compliance applies (`core.observed.ScanView.reboot_required`), for every count
    and listing (status, metrics, dashboard, reports), so they agree."""
    d = schema.devices.c
    return sa.or_(d.reboot_required.is_(True), d.kernel_reboot.is_(True))


_LISTED = (
    schema.devices.c.id,
    schema.devices.c.tenant,
    schema.devices.c.name,
    schema.devices.c.hostname,
    schema.devices.c.os_family,
    schema.devices.c.os_name,
    schema.devices.c.os_version,
    schema.devices.c.role,
    schema.devices.c.labels,
    schema.devices.c.agent_version,
    schema.devices.c.poll_interval,
    schema.devices.c.enrolled_at,
    schema.devices.c.last_seen,
    schema.devices.c.last_scan_at,
    reboot_pending().label("reboot_required"),
    schema.devices.c.machine_id,
    schema.devices.c.retired_at,
)


def list_devices(
    conn: Connection,
    *,
    scope: str | None,
    limit: int = 500,
    offset: int = 0,
    include_retired: bool = False,
) -> list[dict[str, Any]]:
    """Devices of a tenant scope, by tenant then name; retired ones only with `include_retired`."""
    d = schema.devices.c
    query = sa.select(*_LISTED).where(in_scope(d.tenant, scope))
    if not include_retired:
        query = query.where(d.retired_at.is_(None))
    rows = conn.execute(query.order_by(d.tenant, d.name).limit(limit).offset(offset))
    return [dict(row) for row in rows.mappings()]


def count_devices(conn: Connection, *, scope: str, seen_since: datetime | None = None) -> int:
    d = schema.devices.c
    query = (
        sa.select(sa.func.count())
        .select_from(schema.devices)
        .where(in_scope(d.tenant, scope), d.retired_at.is_(None))
    )
    if seen_since is not None:
        query = query.where(d.last_seen >= seen_since)
    return int(conn.execute(query).scalar_one())


def get_device(conn: Connection, device_id: str, *, scope: str) -> dict[str, Any] | None:
    """One device of the scope with its facts, or None (unknown or outside the scope)."""
    d = schema.devices.c
    row = (
        conn.execute(
            sa.select(*_LISTED, d.facts).where(d.id == device_id, in_scope(d.tenant, scope))
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def device_patches(conn: Connection, device_id: str) -> list[dict[str, Any]]:
    """Every patch state of a device (agent and feed), each with the catalogue's record or None."""
    s = schema.patch_states.c
    documents = conn.execute(
        sa.select(s.source, s.observed_at, s.patches)
        .where(s.device_id == device_id)
        .order_by(s.source)
    ).all()
    entries = [
        {"source": doc.source, "observedAt": doc.observed_at, **entry}
        for doc in documents
        for entry in reports.patch_entries(doc.patches)
    ]
    records = catalogue_records(conn, {str(entry["id"]) for entry in entries})
    return [entry | {"record": records.get(str(entry["id"]))} for entry in entries]


def catalogue_records(conn: Connection, patch_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The catalogue's records (as `patches.to_dict` dicts) of the ids it knows."""
    p = schema.patches.c
    ordered = sorted(patch_ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        found.update(
            (row.id, row.record)
            for row in conn.execute(sa.select(p.id, p.record).where(p.id.in_(chunk)))
        )
    return found


def load_patch_states(
    conn: Connection, device_ids: Sequence[str] | None = None
) -> dict[str, dict[str, tuple[datetime, list[dict[str, Any]]]]]:
    """Patch states by device and source: `{device: {source: (observedAt, entries)}}`, each
    entry `{"id", "state": missing|installed, ...the agent's metadata}`.

    For the planner's observed state: one row and one JSON decode per device and source.
    """
    s = schema.patch_states.c
    query = sa.select(s.device_id, s.source, s.observed_at, s.patches)
    if device_ids is not None:
        query = query.where(s.device_id.in_(list(device_ids)))
    states: dict[str, dict[str, tuple[datetime, list[dict[str, Any]]]]] = {}
    for row in conn.execute(query):
        entries = reports.patch_entries(row.patches)
        states.setdefault(row.device_id, {})[row.source] = (row.observed_at, entries)
    return states


def device_inventory(conn: Connection, device_id: str) -> dict[str, Any] | None:
    """The package inventory summary of a device (without the package list), with
    `reboot_required` `{reason, running, package, installed}` when its running kernel is older
    than the newest installed one (else None); the scan's own OS signal stays on the device."""
    i = schema.inventories.c
    row = (
        conn.execute(
            sa.select(i.reported_at, i.os_build, i.kernel, i.package_count).where(
                i.device_id == device_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return dict(row) | {"reboot_required": _kernel_reboot(conn, device_id)}


def _kernel_reboot(conn: Connection, device_id: str) -> dict[str, Any] | None:
    """The reboot the device's installed kernels imply, from its `feed` document, else None."""
    s = schema.patch_states.c
    stored = conn.execute(
        sa.select(s.patches).where(s.device_id == device_id, s.source == findings.FEED)
    ).scalar()
    found = stored.get(findings.REBOOT_REQUIRED) if isinstance(stored, dict) else None
    return found if isinstance(found, dict) else None


# --- counts and look-ups for status, metrics and reports -------------------------------------

_CHUNK = 500  # ids per IN (...) query, under every engine's parameter limit


def count_by_presence(
    conn: Connection, *, scope: str, now: datetime, stale_after: timedelta
) -> dict[tuple[str, str, str], int]:
    """Active devices of `scope` counted by (tenant, os family, presence): `online` when seen
    within two of its own poll intervals (`core.observed.online_since`), `stale` when not seen
    for `stale_after`, `offline` in between. Counted in the database: one query for the poll
    intervals in use (a handful), then one GROUP BY whose CASE tests each device against the
    cut-off of its own interval."""
    d = schema.devices.c
    polls = conn.execute(
        sa.select(d.poll_interval).where(in_scope(d.tenant, scope)).distinct()
    ).scalars()
    online = [
        (
            sa.and_(
                d.poll_interval == poll,
                d.last_seen >= online_since(timedelta(seconds=poll), now=now),
            ),
            "online",
        )
        for poll in sorted(polls)
    ]
    classified = sa.case(*online, (d.last_seen < now - stale_after, "stale"), else_="offline")
    rows = conn.execute(
        sa.select(d.tenant, d.os_family, classified, sa.func.count())
        .where(in_scope(d.tenant, scope), d.retired_at.is_(None))
        .group_by(d.tenant, d.os_family, classified)
    )
    return {(tenant, os_family, found): int(n) for tenant, os_family, found, n in rows}


def count_reboot_pending(conn: Connection, *, scope: str) -> dict[tuple[str, str], int]:
    """Active devices of `scope` whose OS asks for a reboot (`reboot_pending`), by (tenant, os
    family), in that order."""
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.tenant, d.os_family, sa.func.count())
        .where(in_scope(d.tenant, scope), reboot_pending(), d.retired_at.is_(None))
        .group_by(d.tenant, d.os_family)
    )
    return {
        (tenant, os_family): int(count)
        for tenant, os_family, count in sorted(rows, key=lambda row: (row[0], row[1]))
    }


def tenants_of(conn: Connection, device_ids: Collection[str], *, scope: str) -> dict[str, str]:
    """Device id → tenant of those of `device_ids` that are in `scope` (retired ones too);
    unknown ids and devices outside the scope are left out. In key order."""
    d = schema.devices.c
    rows = _of_devices(conn, (d.id, d.tenant), device_ids, scope=scope)
    return dict(sorted((row.id, row.tenant) for row in rows))


def _of_devices(
    conn: Connection,
    columns: tuple[sa.ColumnElement[Any], ...],
    device_ids: Collection[str],
    *,
    scope: str,
) -> list[Any]:
    """Rows of `columns` (the first the id) of the devices of `device_ids` in `scope`: looked up
    `_CHUNK` ids a statement, or, when the ids are most of the scope's devices (the pending
    approvals of a fleet: 200 statements of 500 ids at 100,000 devices), read with the scope's
    other devices in one statement and kept here."""
    d = schema.devices.c
    wanted = set(device_ids)
    if not wanted:
        return []
    if len(wanted) > _CHUNK * 4 and len(wanted) * 2 > count_devices(conn, scope=scope):
        everyone = conn.execute(sa.select(*columns).where(in_scope(d.tenant, scope)))
        return [row for row in everyone if row[0] in wanted]
    ids = sorted(wanted)
    found: list[Any] = []
    for start in range(0, len(ids), _CHUNK):
        found += conn.execute(
            sa.select(*columns).where(
                d.id.in_(ids[start : start + _CHUNK]), in_scope(d.tenant, scope)
            )
        )
    return found


def presence(conn: Connection, *, scope: str | None) -> list[tuple[datetime | None, int]]:
    """(last seen, poll interval in seconds) of every active device of `scope` (None: all)."""
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.last_seen, d.poll_interval).where(
            in_scope(d.tenant, scope), d.retired_at.is_(None)
        )
    )
    return [(seen, int(poll)) for seen, poll in rows]


def names_of(conn: Connection, device_ids: Collection[str]) -> dict[str, str]:
    """Device id → name, for those of `device_ids` that exist (any tenant: the caller scoped
    the rows that name them)."""
    d = schema.devices.c
    wanted = sorted(device_ids)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = sa.select(d.id, d.name).where(d.id.in_(wanted[start : start + _CHUNK]))
        found |= {row.id: row.name for row in conn.execute(query)}
    return found


def agent_entries(conn: Connection, device_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """The entries of each device's last agent scan (`reports.patch_entries`: `{"id", "state",
    ...the agent's metadata}`), by device id; devices without one are left out."""
    s = schema.patch_states.c
    ordered = sorted(device_ids)
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(ordered), _CHUNK):
        rows = conn.execute(
            sa.select(s.device_id, s.patches).where(
                s.device_id.in_(ordered[start : start + _CHUNK]), s.source == reports.AGENT
            )
        )
        found |= {row.device_id: reports.patch_entries(row.patches) for row in rows}
    return found


def reboot_pending_devices(
    conn: Connection, *, scope: str | None
) -> list[tuple[str, str, str, datetime | None]]:
    """(id, name, tenant, last scan) of the devices of `scope` (None: all; retired ones too)
    whose OS asks for a reboot (`reboot_pending`)."""
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.id, d.name, d.tenant, d.last_scan_at).where(
            in_scope(d.tenant, scope), reboot_pending()
        )
    )
    return [(row.id, row.name, row.tenant, row.last_scan_at) for row in rows]


def fleet_rows(conn: Connection, *, scope: str) -> list[dict[str, Any]]:
    """Every device of `scope` (retired ones too), by tenant then name, with the facts the
    dashboard's device list shows: id, tenant, name, os_family, os_name, os_version, role,
    labels, enrolled_at, poll_interval, last_seen, last_scan_at and the scan's own
    reboot_required flag."""
    d = schema.devices.c
    query = (
        sa.select(
            d.id,
            d.tenant,
            d.name,
            d.os_family,
            d.os_name,
            d.os_version,
            d.role,
            d.labels,
            d.enrolled_at,
            d.poll_interval,
            d.last_seen,
            d.last_scan_at,
            d.reboot_required,
        )
        .where(in_scope(d.tenant, scope))
        .order_by(d.tenant, d.name)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def identities(
    conn: Connection, device_ids: Collection[str], *, scope: str
) -> dict[str, tuple[str, str]]:
    """Device id → (name, tenant) of those of `device_ids` that are in `scope` (retired ones
    too); unknown ids and devices outside the scope are left out."""
    d = schema.devices.c
    rows = _of_devices(conn, (d.id, d.name, d.tenant), device_ids, scope=scope)
    return {row.id: (row.name, row.tenant) for row in rows}


def count_outside(conn: Connection, *, scope: str) -> int:
    """How many devices (retired ones too) are outside `scope`."""
    d = schema.devices.c
    query = sa.select(sa.func.count()).select_from(schema.devices).where(~in_scope(d.tenant, scope))
    return int(conn.execute(query).scalar_one())


def tenants(conn: Connection, *, scope: str) -> tuple[str, ...]:
    """The tenants of `scope` that have a device (retired ones count), sorted."""
    d = schema.devices.c
    rows = conn.execute(
        sa.select(d.tenant).where(in_scope(d.tenant, scope)).group_by(d.tenant).order_by(d.tenant)
    )
    return tuple(rows.scalars())
