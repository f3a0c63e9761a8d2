"""The store → ObservedState: devices, their latest scans, the job ledger and the catalogue.

Devices are read joined to their patch-state documents in one streamed query (a server-side
cursor on PostgreSQL), so reading a million-device fleet holds the answer, not the rows.
Equal values are one object (`_Reader`): patch ids are interned, each distinct document is
decoded once and its id tuples are shared by every device that reported it, as are tenants,
OS strings and label maps.

`load` reads the whole store. The reconciler's incremental passes (`controller.runtime.observe`)
read the same thing in pieces: `load_devices` and `load_jobs` for the devices that changed
(`controller.store.changes`), `load_seen` for check-ins, and `assemble` puts the pieces
together exactly as `load` does (devices in id order, jobs in (created_at, id) order).
"""

from __future__ import annotations

import itertools
import json
import operator
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.core import enrichment, reboots
from controller.core.ids import JobId
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobLedger,
    JobState,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
    job_order,
)
from controller.kinds.common import OsFamily
from controller.store import findings, reports, schema
from controller.store.database import IN_LIST_SIZE, id_chunks

JOB_HORIZON = timedelta(days=35)  # finished jobs older than this no longer inform the planner
_ACTIVE_STATES = tuple(s.value for s in JobState if s.in_flight)

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

Notes = tuple[tuple[str, Mapping[str, Any]], ...]  # (patch id, agent entry) for catalogue gaps


@dataclass(frozen=True, slots=True)
class DeviceRows:
    """What the store holds for some devices: their views, scans (devices never scanned have
    none) and the agents' metadata of patches the catalogue lacks (`enrichment`), by id."""

    devices: dict[str, DeviceView]
    scans: dict[str, ScanView]
    notes: dict[str, Notes]


def load(
    conn: Connection, *, now: datetime, jobs_of: Collection[str] | None = None
) -> ObservedState:
    """Everything the planner needs from the store, as one consistent snapshot; `jobs_of`:
    the ledger of these devices only (None: the fleet's).

    The catalogue is the enriched one (`controller.core.enrichment`): supersedence completed
    over the whole catalogue, gaps filled from what agents report; agents' KB spellings are
    mapped to the catalogue's ids.
    """
    view = findings.current_catalogue(conn)
    rows = load_devices(conn, view)
    jobs = load_jobs(conn, since=now - JOB_HORIZON, device_ids=jobs_of)
    return assemble(view, rows, JobLedger.of(jobs))


def load_devices(
    conn: Connection,
    view: findings.CatalogueView,
    device_ids: Collection[str] | None = None,
    *,
    previous: DeviceRows | None = None,
) -> DeviceRows:
    """The devices of `device_ids` (None: the whole fleet) that are not retired, in id order;
    an id not found (retired, unknown) is absent from the answer. `previous`: an earlier
    answer; a view or scan equal to the one it holds for the device is answered as that very
    object, so a re-read of a fleet that mostly did not change (the periodic resync) holds one
    copy of it, not two (hundreds of MB at 1,000,000 devices, `bench/million.py`).

    Streamed: one query per id chunk joins each device to its patch-state documents and is read
    `STREAM_ROWS` rows at a time (a server-side cursor on PostgreSQL), so the only thing that
    grows with the fleet is the answer. The answer is compact: equal values read from
    different rows are one object (`_Reader`), so a fleet whose devices share tenants, labels
    and scan results (the common case: a few patch levels per OS release) costs little more
    than its ids and instants.
    """
    reader = _Reader(view, conn.dialect)
    found = DeviceRows({}, {}, {})
    was = previous or _NOTHING
    for chunk in id_chunks(device_ids):
        # per statement: `Connection.execution_options` would stream every later statement too
        streamed = conn.execute(_devices_query(chunk).execution_options(yield_per=STREAM_ROWS))
        rows = map(_Row._make, streamed)
        for read_id, group in itertools.groupby(rows, key=_ROW_ID):
            first, *others = group
            device = _same(reader.device(first), was.devices.get(read_id))
            device_id = device.id  # a kept view's own id: one string per device, not two
            found.devices[device_id] = device
            documents = [] if first.source is None else [first, *others]
            scan, notes = reader.scan(first, documents)
            if scan is not None:
                found.scans[device_id] = _same(scan, was.scans.get(device_id))
            if notes:
                found.notes[device_id] = notes
    return found


def _same(value: _T, before: _T | None) -> _T:
    """`before` when it equals `value` (the object read earlier), else `value`."""
    return before if before is not None and before == value else value


_NOTHING = DeviceRows({}, {}, {})  # no earlier read

STREAM_ROWS = 2000  # rows per fetch of a streamed read: a few MiB however large the fleet
_ROW_ID = operator.attrgetter("id")


def _devices_query(chunk: list[str] | None) -> sa.Select[Any]:
    """Devices (not retired, in id order) outer-joined to their documents (in source order).

    JSON columns are read as text: equal documents are decoded once (`_Reader`), and facts,
    which only a reboot signal needs, are read only for devices that have one. Times are read
    raw (`_raw_time`) and converted once per distinct value.
    """
    d, s = schema.devices.c, schema.patch_states.c
    query = (
        sa.select(
            d.id,
            # the device's profile, columns 1 to 7 (`_PROFILE`): shared by many devices
            d.tenant,
            d.os_family,
            d.os_name,
            d.os_version,
            d.role,
            sa.cast(d.labels, sa.Text).label("labels"),
            d.poll_interval,
            d.name,
            _raw_time(d.enrolled_at),
            _raw_time(d.last_seen),
            _raw_time(d.last_scan_at),
            _raw_time(d.last_scan_received_at),
            d.reboot_required,
            d.kernel_reboot,
            sa.case((d.reboot_required.is_(True), sa.cast(d.facts, sa.Text))).label("facts"),
            s.source,
            _raw_time(s.observed_at),
            sa.cast(s.patches, sa.Text).label("patches"),
        )
        .select_from(schema.devices.outerjoin(schema.patch_states, s.device_id == d.id))
        .where(d.retired_at.is_(None))
        .order_by(d.id, s.source)
    )
    # a retired device is history: never planned, never counted in compliance
    return query if chunk is None else query.where(d.id.in_(chunk))


_PROFILE = slice(1, 8)  # tenant, OS family, name and version, role, labels, poll interval

# SQLite's text as stored, PostgreSQL's datetime as the driver gives it: no per-value type
# processing (`schema.UtcDateTime`'s rule is applied by `_Reader.instant`, once per value)
_RAW_TIME = sa.DateTime(timezone=True).with_variant(sa.String(), "sqlite")


def _raw_time(column: sa.Column[datetime]) -> sa.Label[Any]:
    return sa.type_coerce(column, _RAW_TIME).label(column.name)


class _Row(NamedTuple):
    """A row of `_devices_query`, its columns in order, as a plain named tuple: a field of a
    SQLAlchemy `Row` read by name costs about 0.3 µs, a dozen per device (more than the rest
    of the reading); a named tuple's about 30 ns. Times are raw (`_RAW_TIME`)."""

    id: str
    tenant: str
    os_family: str
    os_name: str
    os_version: str
    role: str
    labels: str
    poll_interval: int
    name: str
    enrolled_at: str | datetime
    last_seen: str | datetime
    last_scan_at: str | datetime | None
    last_scan_received_at: str | datetime | None
    reboot_required: bool | None
    kernel_reboot: bool
    facts: str | None
    source: str | None
    observed_at: str | datetime | None
    patches: str | None


def load_jobs(
    conn: Connection, *, since: datetime, device_ids: Collection[str] | None = None
) -> list[JobView]:
    """The jobs that inform the planner: in flight, or created at or after `since` (the job
    horizon), of `device_ids` (None: every device), in (created_at, id) order.

    Read as `load_devices` reads devices (`_JobReader`): the columns a view needs, times raw
    and JSON as text, each distinct value converted once. A fleet holds a job or more per
    device within the horizon, and every full pass, `explain` and `plan` read them all: about
    18 µs a job read whole (1.8 s for 100,000 scan jobs on the bench machine), about 4 read so.
    """
    reader = _JobReader(conn.dialect)
    found: list[JobView] = []
    for chunk in id_chunks(device_ids):
        rows = conn.execute(_jobs_query(since, chunk))
        found += map(reader.job, map(_JobRow._make, rows))
    if device_ids is not None and len(device_ids) > IN_LIST_SIZE:
        found.sort(key=job_order)
    return found


def _jobs_query(since: datetime, chunk: list[str] | None) -> sa.Select[Any]:
    """The columns of `_JobRow`, of the jobs in flight or created at or after `since`."""
    j = schema.jobs.c
    query = (
        sa.select(
            j.id,
            j.device_id,
            j.kind,
            j.state,
            sa.cast(j.patch_ids, sa.Text).label("patch_ids"),
            j.window_key,
            # the one payload member a view needs, not the payload (an install's carries its
            # packages and scripts), as JSON text: only a JSON string is an occasion
            sa.cast(j.payload["occasion"], sa.Text).label("occasion"),
            _raw_time(j.created_at),
            _raw_time(j.updated_at),
            _raw_time(j.deadline),
            sa.cast(j.results, sa.Text).label("results"),
            j.reboot_required,
            _raw_time(j.started_at),
            j.run_timeout,
            j.end_reason,
        )
        .where(sa.or_(j.state.in_(_ACTIVE_STATES), j.created_at >= since))
        .order_by(j.created_at, j.id)
    )
    return query if chunk is None else query.where(j.device_id.in_(chunk))


class _JobRow(NamedTuple):
    """A row of `_jobs_query`, its columns in order (see `_Row` for why a named tuple)."""

    id: JobId
    device_id: str
    kind: str
    state: str
    patch_ids: str | None
    window_key: str | None
    occasion: str | None
    created_at: str | datetime | None
    updated_at: str | datetime | None
    deadline: str | datetime | None
    results: str | None
    reboot_required: bool | None
    started_at: str | datetime | None
    run_timeout: int | None
    end_reason: str | None


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


def assemble(view: findings.CatalogueView, rows: DeviceRows, jobs: JobLedger) -> ObservedState:
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


_FAMILIES = {f.value: f for f in OsFamily}
_UTC = schema.UtcDateTime()
_parsed = datetime.fromisoformat  # SQLAlchemy's parsing of SQLite's DATETIME text
_SHARED = 65_536  # distinct values a read shares at most (strings, label maps, documents)


@dataclass(frozen=True, slots=True)
class _Document:
    """One stored patch-state document as a scan reads it, decoded once per distinct text.

    `missing`/`installed`: catalogue ids in first-seen order; `flagged`: installed entries the
    agent marked `pendingReboot`; `dated`: the other installed entries with their install
    instant (agent documents only: a reboot signal is attributed by date, `core.reboots`);
    `notes`: missing entries with metadata the catalogue lacks (agent documents only)."""

    missing: tuple[str, ...]
    installed: tuple[str, ...]
    still_missing: tuple[str, ...]  # `missing` without the ids also listed installed
    flagged: tuple[str, ...]
    dated: tuple[tuple[str, datetime | None], ...]
    notes: Notes


@dataclass(frozen=True, slots=True)
class _Profile:
    """What many devices share: the view's values of the `_PROFILE` columns."""

    tenant: str
    os: OsFamily | None
    os_name: str
    os_version: str
    role: str
    labels: dict[str, str]
    poll_interval: timedelta


class _Instants:
    """Times read raw (`_RAW_TIME`) → aware UTC datetimes, as `schema.UtcDateTime` reads them.
    SQLite's text is parsed as SQLAlchemy parses it, once per distinct text: instants repeat
    (a fleet enrolled, scanned or sent jobs in bulk). PostgreSQL's are the driver's."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._parsed: dict[str, datetime] = {}

    def __call__(self, value: str | datetime | None) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return cast("datetime", _UTC.process_result_value(value, self.dialect))
        found = self._parsed.get(value)
        if found is None:
            found = cast("datetime", _UTC.process_result_value(_parsed(value), self.dialect))
            if len(self._parsed) < _SHARED:
                self._parsed[value] = found
        return found


class _Reader:
    """Streamed rows → views, sharing equal values between devices: strings, label maps and
    poll intervals by value, decoded documents (and their id tuples) by their text.

    Views are values nobody mutates, so one object may stand for many devices: a fleet of a
    million devices over a few dozen patch levels holds a few dozen `missing` tuples. The
    caches hold at most `_SHARED` entries each; past that a value is still right, only not
    shared (a fleet of all-different documents costs what it did before, never more).
    """

    def __init__(self, view: findings.CatalogueView, dialect: sa.Dialect) -> None:
        self.view = view
        # only entries that can add something are worth noting, as the catalogue decides
        self.reported = enrichment.ReportedMetadata(view.completed)
        self._values: dict[Any, Any] = {}
        self.labels: _Memo[str | None, dict[str, str]] = _Memo(lambda text: _labels(_decoded(text)))
        self._documents: dict[tuple[str, str | None], _Document] = {}
        self._profiles: dict[tuple[Any, ...], _Profile] = {}
        self.instant = _Instants(dialect)

    def share(self, value: _T) -> _T:
        """`value`, or the equal one read before (strings, tuples of strings, timedeltas)."""
        found = self._values.get(value)
        if found is not None:
            return cast("_T", found)
        if len(self._values) < _SHARED:
            self._values[value] = value
        return value

    def device(self, row: Any) -> DeviceView:
        profile = self.profile(row[_PROFILE])
        return DeviceView(
            id=row.id,
            tenant=profile.tenant,
            name=row.name,
            os=profile.os,
            os_name=profile.os_name,
            os_version=profile.os_version,
            role=profile.role,
            labels=profile.labels,
            enrolled_at=self.instant(row.enrolled_at),
            last_seen=self.instant(row.last_seen),
            poll_interval=profile.poll_interval,
        )

    def profile(self, columns: tuple[Any, ...]) -> _Profile:
        """The shared values of a device's profile columns (`_PROFILE`), looked up at once:
        a fleet has few distinct profiles."""
        found = self._profiles.get(columns)
        if found is None:
            tenant, family, os_name, os_version, role, labels, poll_interval = columns
            share = self.share
            found = _Profile(
                tenant=share(tenant),
                os=_FAMILIES.get(family),
                os_name=share(os_name),
                os_version=share(os_version),
                role=share(role),
                labels=self.labels(labels),
                poll_interval=share(timedelta(seconds=poll_interval)),
            )
            if len(self._profiles) < _SHARED:
                self._profiles[columns] = found
        return found

    def document(self, source: str, text: str | None) -> _Document:
        key = (source, text)
        found = self._documents.get(key)
        if found is None:
            found = self._decode(source, text)
            if len(self._documents) < _SHARED:
                self._documents[key] = found
        return found

    def _decode(self, source: str, text: str | None) -> _Document:
        view, reported = self.view, self.reported
        known = view.completed
        missing: dict[str, None] = {}
        installed: dict[str, None] = {}
        flagged: list[str] = []
        dated: list[tuple[str, datetime | None]] = []
        notes: list[tuple[str, Mapping[str, Any]]] = []
        agent = source != "feed"
        for entry in reports.patch_entries(_decoded(text)):
            patch_id = sys.intern(str(entry["id"]))
            if patch_id not in known:
                patch_id = sys.intern(
                    enrichment.canonical_id(view.index, patch_id, entry.get("kb"))
                )
            if entry.get("state") == "installed":
                installed[patch_id] = None
                if entry.get("pendingReboot") is True:
                    flagged.append(patch_id)
                elif agent:
                    dated.append((patch_id, _instant(entry.get("installedAt"))))
            else:
                missing[patch_id] = None
                if agent and reported.needs(patch_id):
                    notes.append((patch_id, entry))
        return _Document(
            missing=self.share(tuple(missing)),
            installed=self.share(tuple(installed)),
            still_missing=self.share(tuple(p for p in missing if p not in installed)),
            flagged=tuple(flagged),
            dated=tuple(dated),
            notes=tuple(notes),
        )

    def scan(self, row: Any, rows: list[Any]) -> tuple[ScanView | None, Notes]:
        """The device's scan from its document rows: agent-reported and feed-computed
        findings merged, missing if either says missing; and its notes."""
        rows = sorted(rows, key=_SOURCE) if len(rows) > 1 else rows
        last_scan_at = self.instant(row.last_scan_at)
        if last_scan_at is None and not any(r.source == "feed" for r in rows):
            return None, ()
        documents = [self.document(r.source, r.patches) for r in rows]
        signal = bool(row.reboot_required) or bool(row.kernel_reboot)
        if len(documents) == 1:
            only = documents[0]
            missing, installed, notes = only.still_missing, only.installed, only.notes
        else:
            missing, installed, notes = _merged(documents)
            missing = self.share(missing)
        pending: dict[str, None] = {}
        if signal:
            for document in documents:
                pending.update(dict.fromkeys(document.flagged))
        # feed documents are stamped by the server when it evaluated them
        scanned_at = last_scan_at or max(
            cast("datetime", self.instant(r.observed_at)) for r in rows
        )
        received_at = (
            self.instant(row.last_scan_received_at) if last_scan_at is not None else scanned_at
        )
        dated = [d for document in documents for d in document.dated]
        if signal and row.reboot_required and dated:
            pending.update(dict.fromkeys(_since_boot(row, dated, scanned_at=scanned_at)))
        return ScanView(
            scanned_at=scanned_at,
            received_at=received_at,
            pending_reboot=tuple(pending),
            reboot_required=signal,
            missing=missing,
            installed=installed,
        ), notes


_SOURCE = operator.attrgetter("source")


def _merged(
    documents: list[_Document],
) -> tuple[tuple[str, ...], tuple[str, ...], Notes]:
    """Missing (unless installed per any document), installed and notes of several documents."""
    missing: dict[str, None] = {}
    installed: dict[str, None] = {}
    for document in documents:
        missing.update(dict.fromkeys(document.missing))
        installed.update(dict.fromkeys(document.installed))
    notes = tuple(note for document in documents for note in document.notes)
    return tuple(p for p in missing if p not in installed), tuple(installed), notes


def _decoded(text: str | None) -> Any:
    """A JSON column read as text, decoded; None (NULL) and undecodable text read as None."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _since_boot(
    row: Any, dated: list[tuple[str, datetime | None]], *, scanned_at: datetime
) -> tuple[str, ...]:
    """The agent-installed patches the scan's reboot signal is for (`core.reboots`), with the
    boot time from the device's facts."""
    facts = _decoded(row.facts)
    facts = facts if isinstance(facts, dict) else {}
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


class _Memo(Generic[_K, _V]):
    """`convert(key)`, remembered for the first `_SHARED` distinct keys: equal values read from
    different rows become one object, converted once (past the bound a value is still right,
    only not shared)."""

    __slots__ = ("_convert", "_found")

    def __init__(self, convert: Callable[[_K], _V]) -> None:
        self._convert = convert
        self._found: dict[_K, _V] = {}

    def __call__(self, key: _K) -> _V:
        try:
            return self._found[key]  # the common case, and the cheapest lookup there is
        except KeyError:
            found = self._convert(key)
            if len(self._found) < _SHARED:
                self._found[key] = found
            return found


class _JobReader:
    """`_jobs_query` rows → job views, converting each distinct value once: times, patch id
    lists, results and window keys repeat across the jobs of a fleet (a window's installs,
    scans sent in bulk). Shared values are never mutated (views are values)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.instant = _Instants(dialect)
        self.patch_ids: _Memo[str | None, tuple[str, ...]] = _Memo(
            lambda text: _patch_ids(_decoded(text))
        )
        self.results: _Memo[str | None, tuple[dict[str, PatchResult], dict[str, str]]] = _Memo(
            lambda text: _results(_decoded(text))
        )
        self.window = _Memo(_window)
        self.occasion = _Memo(_occasion)
        self.timeout: _Memo[int, timedelta] = _Memo(lambda seconds: timedelta(seconds=seconds))

    def job(self, row: _JobRow) -> JobView:
        instant = self.instant
        window, occurrence = self.window(row.window_key)
        results, reasons = self.results(row.results)
        return JobView(
            id=row.id,
            device_id=row.device_id,
            kind=_KINDS.get(row.kind) or JobKind(row.kind),
            state=_STATES.get(row.state) or JobState(row.state),
            patch_ids=self.patch_ids(row.patch_ids),
            window=window,
            occurrence=occurrence or self.occasion(row.occasion),
            created_at=instant(row.created_at),
            updated_at=instant(row.updated_at),
            deadline=instant(row.deadline),
            results=results,
            reasons=reasons,
            reboot_required=bool(row.reboot_required),
            started_at=instant(row.started_at),
            run_timeout=self.timeout(row.run_timeout) if row.run_timeout else None,
            end_reason=row.end_reason,
        )


def _window(key: str | None) -> tuple[str | None, str]:
    """A job's `window_key` (`tenant/name@occurrence`) → (window or None, occurrence)."""
    window, _, occurrence = (key or "").partition("@")
    return window or None, occurrence


def _occasion(text: str | None) -> str | None:
    """The payload's `occasion` (JSON text) when it is a string, else None."""
    decoded = _decoded(text)
    return decoded if isinstance(decoded, str) else None


def _results(stored: Any) -> tuple[dict[str, PatchResult], dict[str, str]]:
    """A job's stored results (patch id → {result, reason}) as (results, reasons); an entry of
    another shape is skipped, an unknown result reads as skipped."""
    results: dict[str, PatchResult] = {}
    reasons: dict[str, str] = {}
    for patch_id, outcome in (stored if isinstance(stored, dict) else {}).items():
        found = outcome if isinstance(outcome, dict) else {}  # an odd entry: skipped, no reason
        result = str(found.get("result", ""))
        results[patch_id] = PatchResult(result) if result in _RESULTS else PatchResult.SKIPPED
        if found.get("reason"):
            reasons[patch_id] = str(found["reason"])
    return results, reasons


_KINDS = {k.value: k for k in JobKind}
_STATES = {s.value: s for s in JobState}
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
