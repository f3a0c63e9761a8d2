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
- when the catalogue changes, over every stored inventory, so a new advisory reaches the whole
  fleet without waiting for agents: in chunks of short write transactions (`read_chunk`,
  `write_chunk`, driven by `controller.runtime.feeds.reevaluate_fleet`), or in the caller's one
  transaction (`reevaluate_fleet`, the reference the chunked pass must equal).

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
from controller.store import status as status_store

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
    conn: Connection,
    evaluations: Sequence[Evaluation],
    *,
    now: datetime,
    rendered: Mapping[str, str] | None = None,
) -> None:
    """Replace the `feed` documents of the evaluated devices (delete them where not covered).
    `rendered`: documents already serialised by `render` (by device id), so a caller holding
    the write lock does not spend it on JSON; the others are serialised here."""
    sql = _sql_for(conn.dialect.name)
    stamp = sql.time(now)
    ready = rendered or {}
    texts = {
        e.device_id: ready.get(e.device_id) or _render(e)
        for e in evaluations
        if e.findings is not None
    }
    rows = [(device_id, FEED, stamp, text) for device_id, text in texts.items()]
    gone = [e.device_id for e in evaluations if e.findings is None]
    # The feed document (findings and the kernel signal) is a planner input: a change is
    # recorded only for the devices whose document changed, so a repeated inventory costs
    # no planning.
    changes.record_devices(conn, _changed_documents(conn, texts, gone), now=now)
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


def _changed_documents(
    conn: Connection, texts: Mapping[str, str], gone: Sequence[str]
) -> list[str]:
    """The devices whose `feed` document is about to change: `texts` (new documents, JSON text,
    by device id) that differ from the stored ones as values, and `gone` devices that had
    one. The kernel signal (`devices.kernel_reboot`) is part of the document
    (`rebootRequired`), so it changes only with it."""
    ids = [*texts, *gone]
    stored: dict[str, Any] = {}
    s = schema.patch_states.c
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(s.device_id, s.patches).where(
            s.source == FEED, s.device_id.in_(ids[start : start + _CHUNK])
        )
        stored.update({row.device_id: row.patches for row in conn.execute(query)})
    changed = [d for d, text in texts.items() if stored.get(d, _ABSENT) != json.loads(text)]
    return changed + [d for d in gone if d in stored]


_ABSENT = object()  # no stored document: differs from every new one


def render(evaluations: Sequence[Evaluation]) -> dict[str, str]:
    """The stored JSON text of each covered evaluation's document, by device id."""
    return {e.device_id: _render(e) for e in evaluations if e.findings is not None}


def _render(evaluation: Evaluation) -> str:
    found = evaluation.findings or ()
    return _json(document(found, evaluation.reboot, evaluation.pending_reboot))


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
    """What one pass over the fleet found (or one chunk of it: chunks add up with `+`)."""

    devices: int = 0  # devices with a stored inventory
    covered: int = 0  # of which the catalogue covers
    affected: int = 0  # of which miss at least one patch
    findings: int = 0  # missing (device, patch) pairs
    changed: int = 0  # devices whose findings differ from the stored ones

    def __add__(self, other: FleetEvaluation) -> FleetEvaluation:
        return FleetEvaluation(
            devices=self.devices + other.devices,
            covered=self.covered + other.covered,
            affected=self.affected + other.affected,
            findings=self.findings + other.findings,
            changed=self.changed + other.changed,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "devices": self.devices,
            "covered": self.covered,
            "affected": self.affected,
            "findings": self.findings,
            "changed": self.changed,
        }


def tally(evaluations: Sequence[Evaluation], before: Mapping[str, list[str]]) -> FleetEvaluation:
    """Purely computational: the counts of `evaluations` against the patch ids stored before
    (`before`, by device id; a device absent from it had no `feed` document)."""
    devices = covered = affected = found = changed = 0
    for evaluation in evaluations:
        missing = evaluation.findings
        devices += 1
        ids = None if missing is None else [f.patch_id for f in missing]
        changed += ids != before.get(evaluation.device_id)
        if missing is not None:
            covered += 1
            affected += bool(missing)
            found += len(missing)
    return FleetEvaluation(devices, covered, affected, found, changed)


def reevaluate_fleet(
    conn: Connection, *, now: datetime, view: CatalogueView | None = None
) -> FleetEvaluation:
    """Recompute the feed findings of every device with a stored inventory, all in the caller's
    transaction, one page of devices at a time (memory stays bounded by the page).

    The reference evaluation: `controller.runtime.feeds.reevaluate_fleet` runs the same over
    many short transactions (`read_chunk`/`write_chunk`) and must leave the same rows."""
    view = view or current_catalogue(conn)
    totals = FleetEvaluation()
    after = ""
    while chunk := read_chunk(conn, after=after, limit=_CHUNK):
        after = chunk[-1].device.device_id
        evaluations = [evaluate(view, item.device) for item in chunk]
        totals += tally(
            evaluations, {i.device.device_id: i.stored for i in chunk if i.stored is not None}
        )
        store_evaluations(conn, evaluations, now=now)
    _set_progress(conn, Reevaluation(view.version, after, complete=True), now=now)
    return totals


# --- the fleet in chunks: read, evaluate outside the write lock, write if still current --------

REEVALUATION_KEY = "findings:reevaluation"  # status key of the fleet pass's progress


@dataclass(frozen=True, slots=True)
class StampedInventory:
    """A stored inventory as one read saw it: `stamp` is what the device row said of the inputs
    (inventory digest, OS family, name, version), compared again under the write lock;
    `stored` the patch ids of its `feed` document then (None: it had none)."""

    device: DeviceInventory
    stamp: tuple[str | None, ...]
    stored: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Reevaluation:
    """How far the fleet pass got for one catalogue version (status `findings:reevaluation`):
    every device up to `after` (device id order) is evaluated against `catalogue_version`, and
    `complete` once the last one is. Written in each chunk's transaction, so an interrupted
    pass resumes after its last committed chunk."""

    catalogue_version: str
    after: str = ""
    complete: bool = False

    def pending(self, version: str) -> bool:
        """Whether the fleet still needs a pass for catalogue `version`."""
        return not (self.complete and self.catalogue_version == version)

    def resume_after(self, version: str) -> str:
        """The device id to resume after for `version` ("" to start over)."""
        return self.after if self.catalogue_version == version and not self.complete else ""


def read_reevaluation(conn: Connection) -> Reevaluation | None:
    """The fleet pass's progress; None when no pass was ever recorded."""
    s = schema.status.c
    value = conn.execute(sa.select(s.value).where(s.key == REEVALUATION_KEY)).scalar_one_or_none()
    if not isinstance(value, dict):
        return None
    return Reevaluation(
        catalogue_version=str(value.get("catalogueVersion", "")),
        after=str(value.get("after", "")),
        complete=value.get("complete") is True,
    )


def count_inventories(conn: Connection, *, after: str = "") -> tuple[int, int]:
    """(devices with a stored inventory, how many of them sort at or before `after`)."""
    i = schema.inventories.c
    total = conn.execute(sa.select(sa.func.count()).select_from(schema.inventories)).scalar_one()
    done = 0
    if after:
        done = conn.execute(sa.select(sa.func.count()).where(i.device_id <= after)).scalar_one()
    return int(total), int(done)


def read_chunk(conn: Connection, *, after: str, limit: int) -> list[StampedInventory]:
    """The next `limit` stored inventories after device id `after`, with their stamps and the
    patch ids of their current `feed` documents (a keyset page: stable under inserts)."""
    devices = _inventories(conn, after=after, limit=limit)
    stored = _stored_ids(conn, [device.device_id for device, _ in devices])
    return [
        StampedInventory(device, (digest, *_os(device)), stored.get(device.device_id))
        for device, digest in devices
    ]


def write_chunk(
    conn: Connection,
    view: CatalogueView,
    chunk: Sequence[StampedInventory],
    evaluations: Sequence[Evaluation],
    *,
    now: datetime,
    rendered: Mapping[str, str] | None = None,
) -> FleetEvaluation | None:
    """Store one chunk's evaluations (made against `view` outside the transaction, with their
    documents `rendered` there too when given) and record the pass's progress; None, writing
    nothing, when the catalogue is no longer `view`'s (a newer import re-evaluates the fleet
    itself).

    Under the lock (PostgreSQL: the device rows `FOR UPDATE`, which reports take first too;
    SQLite: the write transaction itself), a device whose stamp moved since the read (a report
    with a new inventory or OS landed in between) is read and evaluated again, so a stale
    evaluation never overwrites a newer report's; a device deleted since is skipped."""
    if not chunk:
        return FleetEvaluation()
    stamps = _lock_stamps(conn, [item.device.device_id for item in chunk])
    if catalogue.catalogue_version(conn) != view.version:
        return None
    kept: list[Evaluation] = []
    before: dict[str, list[str]] = {}
    moved: list[str] = []
    for item, evaluation in zip(chunk, evaluations, strict=True):
        stamp = stamps.get(item.device.device_id)
        if stamp is None:
            continue
        if stamp != item.stamp:
            moved.append(item.device.device_id)
            continue
        kept.append(evaluation)
        if item.stored is not None:
            before[item.device.device_id] = item.stored
    if moved:
        kept.extend(evaluate(view, device) for device, _ in _inventories(conn, ids=moved))
        before.update(_stored_ids(conn, moved))
        stale = set(moved)  # their documents were rendered from the read: never store those
        rendered = {key: text for key, text in (rendered or {}).items() if key not in stale}
    store_evaluations(conn, kept, now=now, rendered=rendered)
    after = chunk[-1].device.device_id
    _set_progress(conn, Reevaluation(view.version, after), now=now)
    return tally(kept, before)


def finish_reevaluation(conn: Connection, view: CatalogueView, *, now: datetime) -> bool:
    """Record the pass for `view` as complete; False (nothing written) when the catalogue
    moved on meanwhile."""
    if catalogue.catalogue_version(conn) != view.version:
        return False
    previous = read_reevaluation(conn)
    after = previous.after if previous is not None else ""
    _set_progress(conn, Reevaluation(view.version, after, complete=True), now=now)
    return True


def _set_progress(conn: Connection, progress: Reevaluation, *, now: datetime) -> None:
    value = {
        "catalogueVersion": progress.catalogue_version,
        "after": progress.after,
        "complete": progress.complete,
    }
    status_store.set_status(conn, REEVALUATION_KEY, value, now=now)


def _os(device: DeviceInventory) -> tuple[str | None, str | None, str | None]:
    return device.os_family, device.os_name, device.os_version


def _lock_stamps(conn: Connection, device_ids: list[str]) -> dict[str, tuple[str | None, ...]]:
    """The devices' current stamps, their rows locked until the transaction ends (in id order,
    so two passes cannot deadlock each other)."""
    d = schema.devices.c
    query = (
        sa.select(d.id, d.inventory_digest, d.os_family, d.os_name, d.os_version)
        .where(d.id.in_(device_ids))
        .order_by(d.id)
        .with_for_update()
    )
    return {row[0]: tuple(row[1:]) for row in conn.execute(query)}


def _inventories(
    conn: Connection, *, after: str = "", limit: int | None = None, ids: list[str] | None = None
) -> list[tuple[DeviceInventory, str | None]]:
    """Stored inventories with their devices' inventory digests: a keyset page after `after`,
    or the devices `ids`."""
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
            d.inventory_digest,
        )
        .join(schema.devices, d.id == i.device_id)
        .order_by(i.device_id)
    )
    query = (
        query.where(i.device_id.in_(ids)) if ids is not None else query.where(i.device_id > after)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(DeviceInventory(*row[:-1]), row[-1]) for row in conn.execute(query)]


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
