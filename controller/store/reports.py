"""Agent reports: heartbeat, facts, scan results and package inventory, written in bulk.

`write_reports` stores a batch of already-validated reports in the caller's transaction with a
handful of statements whatever the batch size: one read of the devices, one UPDATE per shape of
report, one INSERT of scan headers, one DELETE and one multi-row INSERT of patch states, one
upsert of inventories, and for inventories one read of their devices' OS and one upsert of the
`feed` patch states computed from them against the catalogue (`controller.store.findings`:
server-side applicability). The HTTP service batches concurrent reports through it (group
commit); a report is never split across transactions.

Scans are ordered by `scannedAt`: a scan older than the device's newest one (a late retry) is
not applied, and a replay of the newest one changes nothing but the heartbeat. A stored scan
dated beyond the server's clock (`core.clocks`) orders nothing: the next scan replaces it. The
device keeps when the server received its scan (`last_scan_received_at`): freshness is judged
by that, not by the agent's clock.

Each outcome says what the report changed of the planner's inputs (`Outcome.changes`), decided
in the same transaction from the device row alone (one read, already made): digests of what the
planner reads of the last scan and inventory, the facts it reads (OS, role, labels), whether the
agent reported since its enrolment and whether the device was offline (`core.observed.is_online`).
The service reconciles only after reports that changed something (a heartbeat or a repeated
scan costs no planning); effects of time alone (a device going offline, a scan growing stale)
are the periodic pass's.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core import clocks
from controller.core.ids import AlertKey
from controller.core.observed import is_online
from controller.kinds.notifications import AlertSeverity, EventType
from controller.store import alerts, database, findings, schema
from controller.store import changes as planner_changes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class Facts:
    """What the device says about itself: the whole document is kept, and the parts the device
    row has columns for replace them (None: not reported, the column keeps its value)."""

    document: str  # the facts as reported, JSON text
    os_family: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    role: str | None = None
    labels: dict[str, str] | None = None
    agent_version: str | None = None
    machine_id: str | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """A scan: its header and the patch lists, stored as one JSON document per device.

    Callers give the lists as (id, agent metadata) and (id, installed at) pairs, or, as the
    HTTP layer does, the lists already serialised (`document`, from pydantic's Rust serialiser,
    the cheapest way) with their `counts`, so the hot path builds no Python object per patch.
    """

    scanned_at: datetime
    reboot_required: bool
    missing: tuple[tuple[str, dict[str, Any]], ...] = ()
    installed: tuple[tuple[str, datetime | None], ...] = ()
    document: str | None = None  # {"missing": [{"id", ...}], "installed": [{"id", ...}]}
    counts: tuple[int, int] | None = None  # (missing, installed) when `document` is given
    # the lists `document` serialises, as the caller holds them (spares parsing it back)
    lists: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]] | None = None

    def quick_digest(self) -> str:
        """A digest of the stored document and the reboot signal: cheap (one hash of the text),
        equal for a repeated scan listed in the same order."""
        return _digest([self.stored_document(), str(self.reboot_required)])

    def planning_digest(self) -> str:
        """`scan_digest` of this scan (costlier: only when the quick one moved)."""
        if self.lists is not None:
            missing, installed = self.lists
            return scan_digest(
                (entry["id"] for entry in missing),
                (entry["id"] for entry in installed),
                reboot_required=self.reboot_required,
            )
        if self.document is not None:
            lists = json.loads(self.document)
            return scan_digest(
                (entry["id"] for entry in lists.get(MISSING, ())),
                (entry["id"] for entry in lists.get(INSTALLED, ())),
                reboot_required=self.reboot_required,
            )
        return scan_digest(
            (pid for pid, _ in self.missing),
            (pid for pid, _ in self.installed),
            reboot_required=self.reboot_required,
        )

    @property
    def missing_count(self) -> int:
        return self.counts[0] if self.counts is not None else len(self.missing)

    @property
    def installed_count(self) -> int:
        return self.counts[1] if self.counts is not None else len(self.installed)

    def stored_document(self) -> str:
        """The JSON text stored in `patch_states.patches`."""
        if self.document is not None:
            return self.document
        document: dict[str, list[dict[str, Any]]] = {}
        if self.missing:
            document[MISSING] = [{**details, "id": pid} for pid, details in self.missing]
        if self.installed:
            document[INSTALLED] = [
                {"id": pid, "installedAt": at.isoformat()} if at else {"id": pid}
                for pid, at in self.installed
            ]
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Inventory:
    os_build: str | None
    kernel: str | None
    packages: list[dict[str, Any]] = field(default_factory=list)
    module_streams: list[str] | None = None  # None: the agent did not report them
    windows: dict[str, Any] | None = None  # what a Windows device says it runs

    def quick_digest(self) -> str:
        """A digest of the inventory as listed (one serialisation, one hash)."""
        listed = [self.os_build, self.kernel, self.packages, self.module_streams, self.windows]
        return _digest([json.dumps(listed)])

    def planning_digest(self) -> str:
        """A digest of what server-side applicability reads (`findings.DeviceInventory`): the
        package set (order does not matter), the OS build, the kernel, the module streams and the
        Windows OS."""
        entries = sorted(_canonical(package) for package in self.packages)
        streams = None if self.module_streams is None else sorted(self.module_streams)
        platform = _canonical([self.os_build, self.kernel, streams, self.windows])
        return _digest([platform, *entries])


def compare_digests(
    stored: str | None, quick: str, planning: Callable[[], str]
) -> tuple[str, bool]:
    """(the `quick:planning` digest pair to store, whether the planning digest changed) for a
    new scan or inventory against the stored pair. The planning digest (order-free, the costly
    one) is computed only when the quick one differs: a repeated report costs one hash."""
    stored_quick, _, stored_planning = (stored or "").partition(":")
    if stored is not None and quick == stored_quick:
        return stored, False
    found = planning()
    return f"{quick}:{found}", found != stored_planning


def scan_digest(missing: Iterable[str], installed: Iterable[str], *, reboot_required: bool) -> str:
    """A digest of what the planner decides on from a scan (`store.observed`): the sets of
    missing and installed patch ids and the reboot signal. List order, installation times, the
    scan instant and the agent's metadata of a missing patch are left out: a repeated scan has
    the same digest. (That metadata only fills catalogue gaps; a change of it alone is seen by
    the periodic pass.) 30 hex digits."""
    lists = [reboot_required, sorted(map(str, missing)), sorted(map(str, installed))]
    return _digest([_canonical(lists)])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(parts: list[str]) -> str:
    # 30 hex digits: a stored `quick:planning` pair fits the 64-character column
    return hashlib.blake2b("\n".join(parts).encode("utf-8"), digest_size=15).hexdigest()


@dataclass(frozen=True, slots=True)
class Report:
    """One validated agent report for one device."""

    device_id: str
    facts: Facts | None = None
    scan: Scan | None = None
    inventory: Inventory | None = None


class ScanOutcome(StrEnum):
    NONE = "none"  # the report carried no scan
    STORED = "stored"
    DUPLICATE = "duplicate"  # the device's newest scan, again
    STALE = "stale"  # older than the newest scan stored


class Change(StrEnum):
    """A planner input a report changed (`Outcome.changes`)."""

    FIRST_REPORT = "first-report"  # the first report since the device's (re-)enrolment
    ONLINE = "online"  # the device was offline (`core.observed.is_online`) until this report
    FACTS = "facts"  # OS family, name or version, role or labels
    SCAN = "scan"  # a newer scan whose missing/installed sets or reboot signal differ
    INVENTORY = "inventory"  # a package set, OS build or kernel that differs


@dataclass(frozen=True, slots=True)
class Outcome:
    device_id: str
    known: bool  # False: no such device (deleted since the token was checked)
    scan: ScanOutcome = ScanOutcome.NONE
    # the machine id the device is enrolled with, when the report came from another machine
    # (then nothing of the report was stored)
    conflict: str | None = None
    changes: frozenset[Change] = frozenset()  # what it changed of the planner's inputs

    @property
    def replans(self) -> bool:
        """Whether the report changed anything a planning decision depends on."""
        return bool(self.changes)


AGENT = "agent"
FEED = "feed"
MISSING = "missing"
INSTALLED = "installed"


def write_reports(conn: Connection, reports: Sequence[Report], *, now: datetime) -> list[Outcome]:
    """Store a batch of reports in the caller's transaction; one outcome per report, in order."""
    seen: set[str] = set()
    first: list[Report] = []
    again: list[Report] = []
    for report in reports:
        (again if report.device_id in seen else first).append(report)
        seen.add(report.device_id)
    outcomes = dict(zip((id(r) for r in first), _write_distinct(conn, first, now=now), strict=True))
    if again:  # the same device twice in one batch: apply in arrival order
        outcomes.update(
            zip((id(r) for r in again), write_reports(conn, again, now=now), strict=True)
        )
    return [outcomes[id(r)] for r in reports]


def _write_distinct(conn: Connection, reports: Sequence[Report], *, now: datetime) -> list[Outcome]:
    sql = _sql_for(conn.dialect.name)
    ids = [r.device_id for r in reports]
    stored: dict[str, _Stored] = {}
    for row in conn.exec_driver_sql(sql.last_scans(len(ids)), tuple(ids)):
        stored[row[0]] = _Stored(*row[1:])
    outcomes: list[Outcome] = []
    fresh: list[Report] = []
    digests: dict[str, _Digests] = {}
    for report in reports:
        device = stored.get(report.device_id)
        if device is None:
            outcomes.append(Outcome(report.device_id, known=False))
            continue
        enrolled = device.machine_id
        reported = report.facts.machine_id if report.facts is not None else None
        if enrolled and reported and reported != enrolled:
            _identity_conflict(conn, report.device_id, enrolled, reported, now=now)
            outcomes.append(Outcome(report.device_id, known=False, conflict=enrolled))
            continue
        # a scan stored with a clock far ahead (before scans were bounded) bounds nothing
        newest = clocks.latest_trusted(sql.read_time(device.last_scan_at), now=now)
        scan_outcome = _scan_outcome(report.scan, newest)
        if scan_outcome is ScanOutcome.STORED:
            fresh.append(report)
        found = _digests(report, device, stored_scan=scan_outcome is ScanOutcome.STORED)
        digests[report.device_id] = found
        changes = _changes(sql, report, device, found, now=now)
        outcomes.append(Outcome(report.device_id, known=True, scan=scan_outcome, changes=changes))
    known = [r for r, o in zip(reports, outcomes, strict=True) if o.known]
    # a device enrolled before agents reported identities adopts the first one reported
    fresh_ids = {r.device_id for r in fresh}
    first_ids = {r.device_id for r in known if stored[r.device_id].awaiting_report}
    _update_devices(conn, sql, known, fresh_ids, first_ids, digests, now=now)
    # a newer scan moves `fresh_at` (scan schedules, moot scan jobs) even with the same sets
    planner_changes.record_devices(
        conn, (o.device_id for o in outcomes if o.replans or o.device_id in fresh_ids), now=now
    )
    if fresh:
        _store_scans(conn, sql, fresh, now=now)
    inventories = [r for r in known if r.inventory is not None]
    if inventories:
        _store_inventories(conn, inventories, now=now)
        # The OS as stored before this batch (read with the device); a report's own facts
        # override it.
        findings.evaluate_reported(
            conn,
            [_device_inventory(r, stored[r.device_id].operating_system()) for r in inventories],
            now=now,
        )
    return outcomes


@dataclass(frozen=True, slots=True)
class _Stored:
    """The device row as `_Sql.last_scans` reads it (driver values)."""

    last_scan_at: Any
    machine_id: str | None
    last_seen: Any
    poll_interval: int
    awaiting_report: Any
    scan_digest: str | None
    inventory_digest: str | None
    os_family: str
    os_name: str
    os_version: str
    role: str
    labels: Any
    # the facts document while the scan's reboot signal is set (else None): the planner reads
    # its boot time then (`BOOT_FACTS`)
    reboot_facts: Any

    def operating_system(self) -> tuple[str | None, str | None, str | None]:
        return self.os_family, self.os_name, self.os_version


@dataclass(frozen=True, slots=True)
class _Digests:
    """The digest pairs to store (None: no such part in the report) and what changed."""

    scan: str | None = None  # of a scan that replaces the stored one
    inventory: str | None = None
    scan_changed: bool = False
    inventory_changed: bool = False


def _digests(report: Report, device: _Stored, *, stored_scan: bool) -> _Digests:
    scan, scan_changed = (
        compare_digests(device.scan_digest, report.scan.quick_digest(), report.scan.planning_digest)
        if report.scan is not None and stored_scan
        else (None, False)
    )
    inventory, inventory_changed = (
        compare_digests(
            device.inventory_digest,
            report.inventory.quick_digest(),
            report.inventory.planning_digest,
        )
        if report.inventory is not None
        else (None, False)
    )
    return _Digests(scan, inventory, scan_changed, inventory_changed)


def _changes(
    sql: _Sql, report: Report, device: _Stored, digests: _Digests, *, now: datetime
) -> frozenset[Change]:
    """What `report` changes of the planner's inputs, against the device row before it."""
    changes: set[Change] = set()
    if device.awaiting_report:
        changes.add(Change.FIRST_REPORT)
    poll = timedelta(seconds=device.poll_interval)
    if not is_online(sql.read_time(device.last_seen), poll, now=now):
        changes.add(Change.ONLINE)
    if report.facts is not None and _facts_differ(report.facts, device):
        changes.add(Change.FACTS)
    if digests.scan_changed:
        changes.add(Change.SCAN)
    if digests.inventory_changed:
        changes.add(Change.INVENTORY)
    return frozenset(changes)


def _facts_differ(facts: Facts, device: _Stored) -> bool:
    """Whether the facts the planner reads change (a fact not reported keeps its value)."""
    for reported, stored in (
        (facts.os_family, device.os_family),
        (facts.os_name, device.os_name),
        (facts.os_version, device.os_version),
        (facts.role, device.role),
    ):
        if reported is not None and reported != stored:
            return True
    if facts.labels is not None:
        labels = _json_value(device.labels)
        if facts.labels != labels:
            return True
    return _boot_facts_differ(facts, device)


# The facts the planner reads for a device whose scan asks for a reboot: when it booted
# (`controller.store.observed`, `core.reboots.boot_time`), so which installs the reboot is for.
BOOT_FACTS = ("uptime", "lastBootAt")


def _boot_facts_differ(facts: Facts, device: _Stored) -> bool:
    """Whether the report changes a boot fact the planner reads: only while the stored scan's
    reboot signal is set (else the planner reads none), so an agent's uptime, new in every
    report, costs a pass only for a device waiting for its reboot."""
    if device.reboot_facts is None:
        return False
    stored = _json_value(device.reboot_facts)
    reported = json.loads(facts.document)
    if not isinstance(stored, dict) or not isinstance(reported, dict):
        return bool(stored != reported)
    return any(stored.get(key) != reported.get(key) for key in BOOT_FACTS)


def _json_value(value: Any) -> Any:
    """A JSON column as the driver returns it: text on SQLite, decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def _identity_conflict(
    conn: Connection, device_id: str, enrolled: str, reported: str, *, now: datetime
) -> None:
    """Raise the IdentityConflict alert of a device token used from another machine (a clone
    that kept the original's agent state), once per machine."""
    tenant = conn.execute(
        sa.select(schema.devices.c.tenant).where(schema.devices.c.id == device_id)
    ).scalar_one()
    message = (
        f"device {device_id} reported from another machine (machine id {reported}; it is "
        f"enrolled as {enrolled}): a cloned machine is using the original's agent state. "
        "Its reports are refused; enrol the clone with its own hostname and a fresh state dir"
    )
    alerts.add_alert(
        conn,
        alerts.NewAlert(
            kind=EventType.IDENTITY_CONFLICT.value,
            severity=AlertSeverity.WARNING.value,
            message=message,
            tenant=tenant,
            device_id=device_id,
            details={"enrolledMachineId": enrolled, "machineId": reported},
            dedupe_key=AlertKey.of(EventType.IDENTITY_CONFLICT, device_id, reported).format(),
        ),
        now=now,
    )


def _device_inventory(
    report: Report, stored_os: tuple[str | None, str | None, str | None]
) -> findings.DeviceInventory:
    """The inventory with the device's OS as this report states it, else as stored."""
    inventory, facts = report.inventory, report.facts
    family, name, version = stored_os
    if facts is not None:
        family = facts.os_family or family
        name = facts.os_name or name
        version = facts.os_version or version
    assert inventory is not None  # noqa: S101 - only reports with an inventory get here
    return findings.DeviceInventory(
        device_id=report.device_id,
        os_family=family,
        os_name=name,
        os_version=version,
        os_build=inventory.os_build,
        kernel=inventory.kernel,
        packages=inventory.packages,
        module_streams=inventory.module_streams,
        windows=inventory.windows,
    )


def _scan_outcome(scan: Scan | None, last_scan_at: datetime | None) -> ScanOutcome:
    """Purely computational: whether a reported scan replaces the stored state."""
    if scan is None:
        return ScanOutcome.NONE
    if last_scan_at is None or scan.scanned_at > last_scan_at:
        return ScanOutcome.STORED
    if scan.scanned_at == last_scan_at:
        return ScanOutcome.DUPLICATE
    return ScanOutcome.STALE


def _update_devices(
    conn: Connection,
    sql: _Sql,
    reports: Sequence[Report],
    fresh_ids: set[str],
    first_ids: set[str],
    digests: dict[str, _Digests],
    *,
    now: datetime,
) -> None:
    seen = sql.time(now)
    by_shape: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for report in reports:
        row: dict[str, Any] = {"last_seen": seen}
        if report.device_id in first_ids:
            row["awaiting_report"] = False
        if report.facts is not None:
            facts = report.facts
            row["facts"] = facts.document
            columns = {
                "os_family": facts.os_family,
                "os_name": facts.os_name,
                "os_version": facts.os_version,
                "role": facts.role,
                "labels": sql.json(facts.labels) if facts.labels is not None else None,
                "agent_version": facts.agent_version,
                "machine_id": facts.machine_id,
            }
            row |= {key: value for key, value in columns.items() if value is not None}
        if report.device_id in fresh_ids and report.scan is not None:
            row["last_scan_at"] = sql.time(report.scan.scanned_at)
            row["last_scan_received_at"] = seen
            row["reboot_required"] = report.scan.reboot_required
            row["scan_digest"] = digests[report.device_id].scan
        if report.inventory is not None:
            row["inventory_digest"] = digests[report.device_id].inventory
        by_shape.setdefault(tuple(row), []).append((*row.values(), report.device_id))
    for shape, rows in by_shape.items():
        conn.exec_driver_sql(sql.device_update(shape), rows)


def _store_scans(conn: Connection, sql: _Sql, reports: Sequence[Report], *, now: datetime) -> None:
    received = sql.time(now)
    headers: list[tuple[Any, ...]] = []
    documents: list[tuple[Any, ...]] = []
    for report in reports:
        scan = report.scan
        if scan is None:  # pragma: no cover - only fresh scans get here
            continue
        scanned = sql.time(scan.scanned_at)
        headers.append(
            (
                report.device_id,
                scanned,
                received,
                scan.reboot_required,
                scan.missing_count,
                scan.installed_count,
            )
        )
        documents.append((report.device_id, AGENT, scanned, scan.stored_document()))
    conn.exec_driver_sql(sql.scan_headers, headers)
    conn.exec_driver_sql(sql.patch_states, documents)


def prune_scans(conn: Connection, *, before: datetime) -> int:
    """Delete scan headers received before `before` (the current patch states stay: they live
    in `patch_states`); returns how many went. For the runtime's housekeeping."""
    s = schema.scans.c
    result = conn.execute(schema.scans.delete().where(s.received_at < before))
    return max(result.rowcount, 0)


def patch_entries(document: Any) -> list[dict[str, Any]]:
    """A stored patch-state document as flat entries: `{"id", "state", ...}` per patch.

    Accepts the scan form `{"missing": [...], "installed": [...]}` and a list that is already
    flat (each entry with its own `state`), as a writer of `feed` documents may store.
    Whatever is stored, the answer is well formed: an entry that is not an object or has no
    usable `id` (text or a number) is skipped, and a list that is not a list counts as empty.
    """
    if isinstance(document, list):
        return [e for e in document if isinstance(e, dict) and e.get("id") not in _NO_ID]
    if not isinstance(document, dict):
        return []
    # Inline checks, no call per entry: this runs for every patch of the fleet at each pass.
    return [
        {**e, "state": state}
        for state in (MISSING, INSTALLED)
        if isinstance(listed := document.get(state), list)
        for e in listed
        if isinstance(e, dict) and e.get("id") not in _NO_ID
    ]


_NO_ID = (None, "")  # an entry without a usable id is skipped


def _store_inventories(conn: Connection, reports: Sequence[Report], *, now: datetime) -> None:
    rows = [
        {
            "device_id": r.device_id,
            "reported_at": now,
            "os_build": r.inventory.os_build,
            "kernel": r.inventory.kernel,
            "package_count": len(r.inventory.packages),
            "packages": r.inventory.packages,
            "module_streams": r.inventory.module_streams,
            "windows": r.inventory.windows,
        }
        for r in reports
        if r.inventory is not None
    ]
    conn.execute(_statements(conn.dialect.name).inventories, rows)


# --- SQL, built once per dialect ------------------------------------------------------------
# The hot statements are plain SQL run with `exec_driver_sql`: per report, SQLAlchemy's
# statement compilation and per-row type processing cost more than SQLite's own work. The
# values are converted here exactly as the column types of `schema` would (UTC times, JSON).

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for SQLite DATETIME


@dataclass(frozen=True)  # no slots: cached_property keeps its values in __dict__
class _Sql:
    dialect: str

    @property
    def sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def mark(self) -> str:
        return "?" if self.sqlite else "%s"

    @property
    def json_mark(self) -> str:
        return "?" if self.sqlite else "CAST(%s AS JSONB)"

    def time(self, value: datetime) -> Any:
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None).strftime(_SQLITE_TIME) if self.sqlite else utc

    def read_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # type: ignore[no-any-return]

    def json(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def last_scans(self, count: int) -> str:
        marks = ", ".join([self.mark] * count)
        return (
            "SELECT id, last_scan_at, machine_id, last_seen, poll_interval, awaiting_report, "  # noqa: S608 - placeholders only
            "scan_digest, inventory_digest, os_family, os_name, os_version, role, labels, "
            "CASE WHEN reboot_required THEN facts END "
            f"FROM devices WHERE id IN ({marks})"
        )

    def device_update(self, columns: tuple[str, ...]) -> str:
        return _device_update(self, columns)

    @functools.cached_property
    def scan_headers(self) -> str:
        marks = ", ".join([self.mark] * 6)
        return (
            "INSERT INTO scans (device_id, scanned_at, received_at, reboot_required, "  # noqa: S608 - placeholders only
            f"missing_count, installed_count) VALUES ({marks}) "
            "ON CONFLICT (device_id, scanned_at) DO NOTHING"
        )

    @functools.cached_property
    def patch_states(self) -> str:
        m = self.mark
        return (
            "INSERT INTO patch_states (device_id, source, observed_at, patches) "  # noqa: S608 - placeholders only
            f"VALUES ({m}, {m}, {m}, {self.json_mark}) ON CONFLICT (device_id, source) "
            "DO UPDATE SET observed_at = excluded.observed_at, patches = excluded.patches"
        )


_JSON_COLUMNS = frozenset({"facts", "labels"})


@functools.cache
def _device_update(sql: _Sql, columns: tuple[str, ...]) -> str:
    sets = ", ".join(
        f"{name} = {sql.json_mark if name in _JSON_COLUMNS else sql.mark}" for name in columns
    )
    return f"UPDATE devices SET {sets} WHERE id = {sql.mark}"  # noqa: S608 - our column names


@functools.cache
def _sql_for(dialect: str) -> _Sql:
    return _Sql(dialect)


@dataclass(frozen=True, slots=True)
class _Statements:
    inventories: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert = database.conflict_insert(dialect)
    inventories = insert(schema.inventories)
    return _Statements(
        inventories=inventories.on_conflict_do_update(
            index_elements=["device_id"],
            set_={
                name: inventories.excluded[name]
                for name in (
                    "reported_at",
                    "os_build",
                    "kernel",
                    "package_count",
                    "packages",
                    "module_streams",
                    "windows",
                )
            },
        ),
    )
