"""Feed findings: server-side applicability stored next to the agents' scans.

A device that reports its package inventory gets a `feed` patch-state document
(`patch_states`, source `feed`) holding the catalogue patches it misses, computed by
`controller.core.applicability` from the inventory: one document per device, in the same shape as
an agent's scan (`{"missing": [{"id", "package", "installed", "fixed"}]}`), so the planner
(`controller.store.observed`) and the read API take feed findings exactly like scan findings,
with their source recorded.

When findings are (re)computed:
- when a report carries an inventory (`evaluate_reported`, called by `reports.write_reports` in
  the report's own transaction);
- when the catalogue changes (`reevaluate_fleet`, over every stored inventory in the caller's
  transaction), so a new advisory reaches the whole fleet without waiting for agents.

A device whose release the catalogue does not cover (no fix for `debian:12` at all, no KB on its
Windows build line) gets no `feed` document, and loses the one it had: an empty finding list
would otherwise read as "nothing missing" and make a device compliant on no evidence.

The `ApplicabilityIndex` is built once per catalogue version and shared by every evaluation of
the process (`current_catalogue`): the report path pays one primary-key read of the version per
batch, and rebuilds only after an import.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core import applicability, enrichment, kernels, patches, winproducts
from controller.core.applicability import ApplicabilityIndex, InstalledPackage, Inventory
from controller.core.versions import scheme_for_release, windows_build_line
from controller.kinds.common import OsFamily
from controller.store import catalogue, changes, schema

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Engine

    from controller.core.applicability import Finding
    from controller.core.patches import PatchRecord

FEED = "feed"
_CHUNK = 500


# --- the catalogue, indexed once per version ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogueView:
    """The catalogue at one version: its records indexed for applicability, the Linux releases
    it has package fixes for (a device of another release is not covered), and the records with
    their supersedence completed over the whole catalogue, as the planner reads them."""

    version: str
    index: ApplicabilityIndex
    releases: frozenset[str]
    completed: Mapping[str, PatchRecord]  # the records, supersedence completed (the planner's)

    @classmethod
    def build(cls, version: str, records: Iterable[PatchRecord]) -> CatalogueView:
        index = ApplicabilityIndex(records)
        releases = frozenset(
            package.release
            for record in index.records.values()
            if not record.withdrawn
            for package in record.packages
        )
        return cls(version, index, releases, enrichment.complete_supersedence(index))

    def covers(self, inventory: Inventory) -> bool:
        """Whether the catalogue can say anything about the device (see the module docstring)."""
        if inventory.os is OsFamily.WINDOWS:
            line = windows_build_line(inventory.os_build) if inventory.os_build else None
            return line is not None and bool(self.index.fixes_on_line(line))
        return inventory.release in self.releases


_views: weakref.WeakKeyDictionary[Engine, CatalogueView] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def current_catalogue(conn: Connection) -> CatalogueView:
    """The catalogue as the caller's transaction sees it, indexed; cached per store and version.

    The version is read before the records: should an import commit in between (PostgreSQL reads
    each statement at its own snapshot), the view holds newer records under the older version
    and is rebuilt at the next call, never the reverse.
    """
    version = catalogue.catalogue_version(conn)
    with _views_lock:  # the writer (event loop) and the reconcile thread both read it
        cached = _views.get(conn.engine)
    if cached is not None and cached.version == version:
        return cached
    view = CatalogueView.build(version, catalogue.load_catalogue(conn).values())
    remember(conn, view)
    return view


def remember(conn: Connection, view: CatalogueView) -> None:
    """Make `view` the cached catalogue of the connection's store (after an import)."""
    with _views_lock:
        _views[conn.engine] = view


# --- inventories → findings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceInventory:
    """A stored or reported inventory with the device facts applicability needs."""

    device_id: str
    os_family: str | None
    os_name: str | None
    os_version: str | None
    os_build: str | None
    kernel: str | None
    packages: Sequence[Mapping[str, Any]]
    module_streams: Sequence[str] | None = None
    windows: Mapping[str, Any] | None = None

    def inventory(self) -> Inventory | None:
        """The core's value; None for a device whose OS family is unknown."""
        if self.os_family == OsFamily.WINDOWS.value:
            return Inventory(
                os=OsFamily.WINDOWS,
                os_build=self.os_build,
                kernel=self.kernel,
                windows=_windows(self.windows, self.os_build),
            )
        if self.os_family != OsFamily.LINUX.value:
            return None
        release = patches.release_key(self.os_name or "", self.os_version or "")
        return Inventory(
            os=OsFamily.LINUX,
            release=release,
            packages=tuple(_package(p) for p in self.packages if _is_package(p)),
            os_build=self.os_build,
            kernel=self.kernel,
            module_streams=_streams(self.module_streams),
        )


def _windows(stored: object, os_build: str | None) -> winproducts.WindowsOs | None:
    # Read defensively, as stored by `reports`: camelCase keys of the report's `windows`.
    if not isinstance(stored, dict):
        return None

    def text(key: str) -> str:
        value = stored.get(key)
        return value if isinstance(value, str) else ""

    return winproducts.WindowsOs(
        product_name=text("productName"),
        installation_type=text("installationType"),
        edition_id=text("editionId"),
        display_version=text("displayVersion"),
        architecture=text("architecture"),
        build=os_build or "",
        hotpatch_enrolled=stored.get("hotpatchEnrolled") is True,
    )


def _streams(stored: object) -> tuple[str, ...] | None:
    # Read defensively: only a list of texts is a report of streams.
    if not isinstance(stored, list | tuple):
        return None
    return tuple(str(stream) for stream in stored if isinstance(stream, str))


def _is_package(entry: Mapping[str, Any]) -> bool:
    return isinstance(entry, dict) and bool(entry.get("name")) and bool(entry.get("version"))


def _package(entry: Mapping[str, Any]) -> InstalledPackage:
    epoch = entry.get("epoch")
    return InstalledPackage(
        name=str(entry["name"]),
        version=str(entry["version"]),
        arch=str(entry.get("arch") or ""),
        epoch=str(epoch) if epoch not in (None, "") else None,
        release=entry.get("release") or None,
        source=entry.get("source") or None,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The findings of one device: `findings` None when the catalogue does not cover it;
    `reboot` the reboot its installed kernels imply (`kernels.detect_reboot`)."""

    device_id: str
    findings: tuple[Finding, ...] | None
    reboot: kernels.KernelReboot | None = None
    # installed, in effect only after the reboot (`applicability.detect_pending_reboot`)
    pending_reboot: tuple[str, ...] = ()


def evaluate(view: CatalogueView, device: DeviceInventory) -> Evaluation:
    """Purely computational: the device's feed findings against one catalogue view."""
    inventory = device.inventory()
    if inventory is None or not view.covers(inventory):
        return Evaluation(device.device_id, None)
    reboot = kernels.detect_reboot(
        scheme_for_release(inventory.release), inventory.kernel, inventory.packages
    )
    missing = applicability.detect_missing(view.index, inventory)
    pending = (
        applicability.detect_pending_reboot(view.index, inventory, (f.patch_id for f in missing))
        if reboot is not None
        else ()
    )
    return Evaluation(device.device_id, missing, reboot, pending)


def document(
    findings: Sequence[Finding],
    reboot: kernels.KernelReboot | None = None,
    pending_reboot: Sequence[str] = (),
) -> dict[str, Any]:
    """The stored `feed` document: the scan form, each finding naming its package versions, and
    `rebootRequired` `{reason, running, package, installed}` when the running kernel is older
    than the newest installed one (a finding of its own: the scan's OS signal is kept apart),
    with the patches that reboot puts in effect as `installed` entries `{id, pendingReboot:
    true}` (DESIGN.md 3.6 `installed-pending-reboot`)."""
    found: dict[str, Any] = {"missing": [_entry(finding) for finding in findings]}
    if pending_reboot:
        found["installed"] = [{"id": pid, "pendingReboot": True} for pid in pending_reboot]
    if reboot is not None:
        found[REBOOT_REQUIRED] = {
            "reason": reboot.reason,
            "running": reboot.running,
            "package": reboot.package,
            "installed": reboot.installed,
        }
    return found


REBOOT_REQUIRED = "rebootRequired"


def _entry(finding: Finding) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": finding.patch_id,
        "package": finding.package,
        "installed": finding.installed,
        "fixed": finding.fixed,
    }
    if len(finding.packages) > 1:
        entry["packages"] = [_update(u) for u in finding.packages]
    elif finding.packages and finding.packages[0].source:
        # Not `source`: a patch entry's `source` is who found it (agent, feed).
        entry["sourcePackage"] = finding.packages[0].source
    return entry


def _update(update: applicability.PackageUpdate) -> dict[str, Any]:
    found = {
        "name": update.name,
        "arch": update.arch,
        "installed": update.installed,
        "fixed": update.fixed,
    }
    if update.source:
        found["sourcePackage"] = update.source  # the versions are this source package's
    return found


# --- writing -----------------------------------------------------------------------------------


def evaluate_reported(
    conn: Connection, devices: Sequence[DeviceInventory], *, now: datetime
) -> list[Evaluation]:
    """Evaluate freshly reported inventories and store their findings (the report path)."""
    if not devices:
        return []
    view = current_catalogue(conn)
    evaluations = [evaluate(view, device) for device in devices]
    store_evaluations(conn, evaluations, now=now)
    return evaluations


def store_evaluations(
    conn: Connection, evaluations: Sequence[Evaluation], *, now: datetime
) -> None:
    """Replace the `feed` documents of the evaluated devices (delete them where not covered)."""
    sql = _sql_for(conn.dialect.name)
    stamp = sql.time(now)
    rows = [
        (e.device_id, FEED, stamp, _json(document(e.findings, e.reboot, e.pending_reboot)))
        for e in evaluations
        if e.findings is not None
    ]
    gone = [e.device_id for e in evaluations if e.findings is None]
    # feed findings (and the kernel signal) are planner inputs of every device evaluated
    changes.record_devices(conn, (e.device_id for e in evaluations), now=now)
    if rows:
        conn.exec_driver_sql(sql.upsert, rows)
    _store_kernel_reboots(conn, evaluations)
    for start in range(0, len(gone), _CHUNK):
        s = schema.patch_states.c
        conn.execute(
            schema.patch_states.delete().where(
                s.source == FEED, s.device_id.in_(gone[start : start + _CHUNK])
            )
        )


def _store_kernel_reboots(conn: Connection, evaluations: Sequence[Evaluation]) -> None:
    """Keep `devices.kernel_reboot` (the running-kernel finding, an OS reboot signal that the
    counts of pending reboots read next to the scan's) equal to the evaluations: set where
    found, cleared where it was set and is no longer found. Set-based, few statements."""
    d = schema.devices.c
    found = [e.device_id for e in evaluations if e.reboot is not None]
    cleared = [e.device_id for e in evaluations if e.reboot is None]
    for ids, value in ((found, True), (cleared, False)):
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                schema.devices.update()
                .where(d.id.in_(ids[start : start + _CHUNK]), d.kernel_reboot != value)
                .values(kernel_reboot=value)
            )


@dataclass(frozen=True, slots=True)
class FleetEvaluation:
    """What one pass over the fleet found."""

    devices: int = 0  # devices with a stored inventory
    covered: int = 0  # of which the catalogue covers
    affected: int = 0  # of which miss at least one patch
    findings: int = 0  # missing (device, patch) pairs
    changed: int = 0  # devices whose findings differ from the stored ones

    def as_dict(self) -> dict[str, int]:
        return {
            "devices": self.devices,
            "covered": self.covered,
            "affected": self.affected,
            "findings": self.findings,
            "changed": self.changed,
        }


def reevaluate_fleet(
    conn: Connection, *, now: datetime, view: CatalogueView | None = None
) -> FleetEvaluation:
    """Recompute the feed findings of every device with a stored inventory, in the caller's
    transaction, one chunk of devices at a time (memory stays bounded by the chunk)."""
    view = view or current_catalogue(conn)
    totals = {"devices": 0, "covered": 0, "affected": 0, "findings": 0, "changed": 0}
    after = ""
    while True:
        chunk = _inventories(conn, after=after)
        if not chunk:
            break
        after = chunk[-1].device_id
        evaluations = [evaluate(view, device) for device in chunk]
        before = _stored_ids(conn, [d.device_id for d in chunk])
        for evaluation in evaluations:
            found = evaluation.findings
            totals["devices"] += 1
            ids = None if found is None else [f.patch_id for f in found]
            totals["changed"] += ids != before.get(evaluation.device_id)
            if found is not None:
                totals["covered"] += 1
                totals["affected"] += bool(found)
                totals["findings"] += len(found)
        store_evaluations(conn, evaluations, now=now)
    return FleetEvaluation(**totals)


def _inventories(conn: Connection, *, after: str) -> list[DeviceInventory]:
    i, d = schema.inventories.c, schema.devices.c
    query = (
        sa.select(
            i.device_id,
            d.os_family,
            d.os_name,
            d.os_version,
            i.os_build,
            i.kernel,
            i.packages,
            i.module_streams,
            i.windows,
        )
        .join(schema.devices, d.id == i.device_id)
        .where(i.device_id > after)
        .order_by(i.device_id)
        .limit(_CHUNK)
    )
    return [DeviceInventory(*row) for row in conn.execute(query)]


def _stored_ids(conn: Connection, device_ids: list[str]) -> dict[str, list[str]]:
    """The patch ids of the devices' current `feed` documents."""
    s = schema.patch_states.c
    rows = conn.execute(
        sa.select(s.device_id, s.patches).where(s.source == FEED, s.device_id.in_(device_ids))
    )
    found: dict[str, list[str]] = {}
    for row in rows:  # read defensively: an odd stored document counts as listing nothing
        document = row.patches if isinstance(row.patches, dict) else {}
        missing = document.get("missing")
        found[row.device_id] = [
            str(e["id"])
            for e in (missing if isinstance(missing, list) else ())
            if isinstance(e, dict) and e.get("id") not in (None, "")
        ]
    return found


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- SQL, built once per dialect (the report path runs it) -------------------------------------

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for SQLite DATETIME


@dataclass(frozen=True, slots=True)
class _Sql:
    dialect: str
    upsert: str

    def time(self, value: datetime) -> Any:
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None).strftime(_SQLITE_TIME) if self.dialect == "sqlite" else utc


@functools.cache
def _sql_for(dialect: str) -> _Sql:
    mark, json_mark = ("?", "?") if dialect == "sqlite" else ("%s", "CAST(%s AS JSONB)")
    upsert = (
        "INSERT INTO patch_states (device_id, source, observed_at, patches) "  # noqa: S608 - placeholders only
        f"VALUES ({mark}, {mark}, {mark}, {json_mark}) ON CONFLICT (device_id, source) "
        "DO UPDATE SET observed_at = excluded.observed_at, patches = excluded.patches"
    )
    return _Sql(dialect, upsert)
