"""The observed state of the reconciler's passes: read whole, or brought up to date from deltas.

`observe` reads everything (`controller.store.observed.load`). `Observer` keeps the last
observed state between passes and, on an incremental pass, reads only what changed since: the
devices listed in `controller.store.changes` (their rows, scans and jobs), `last_seen` of
devices that may only have checked in (below), jobs leaving the job horizon, and the catalogue
when its version moved. It answers the new `ObservedState` with the `Changes` the planner is
given.

Check-ins: a report that changes nothing records nothing, so the kept `last_seen` of a device
that keeps checking in ages. It matters only once the kept value would make the device offline
(`core.observed.is_online`): the observer keeps a heap of those instants, and a device whose
instant passed has its `last_seen` read again (a handful per pass, not the fleet). A device
that really went offline keeps its value; its next report records an `online` change
(`controller.store.reports`).

A full pass (`full`) reads everything and starts a new mark; the reconciler runs one first,
periodically (the resync), and after an error or a change of leader.
"""

from __future__ import annotations

import dataclasses
import heapq
import operator
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from controller.core.incremental import Changes
from controller.core.observed import (
    ONLINE_POLL_INTERVALS,
    DeviceView,
    JobLedger,
    JobView,
    ObservedState,
    job_order,
)
from controller.store import Connection, changes, findings
from controller.store import observed as stored
from controller.store.observed import JOB_HORIZON

__all__ = ["JOB_HORIZON", "Observation", "Observer", "observe"]


_T = TypeVar("_T")


def observe(
    conn: Connection, *, now: datetime, jobs_of: Collection[str] | None = None
) -> ObservedState:
    """Everything the planner needs from the store, as one consistent snapshot
    (`controller.store.observed.load`); `jobs_of`: the ledger of these devices only."""
    return stored.load(conn, now=now, jobs_of=jobs_of)


@dataclass(frozen=True, slots=True)
class Observation:
    """One pass's observed state, what changed since the previous one, and how many devices
    were read from the store for it (the whole fleet on a full pass)."""

    observed: ObservedState
    changes: Changes
    devices_read: int


@dataclass(slots=True)
class _Kept:
    """What the observer keeps between passes."""

    version: str
    view: findings.CatalogueView
    rows: stored.DeviceRows
    jobs: JobLedger
    observed: ObservedState
    mark: changes.Mark
    now: datetime
    # (instant the kept `last_seen` makes the device offline, device id): checked when passed
    offline: list[tuple[datetime, str]]
    # (creation of a device's oldest finished job, device id): when it falls out of the job
    # horizon, the device's jobs are read again (stale entries are skipped when they come up)
    leaving: list[tuple[datetime, str]]


class Observer:
    """Keeps the last observed state; `full` and `incremental` answer the next one."""

    def __init__(self) -> None:
        self._kept: _Kept | None = None

    @property
    def primed(self) -> bool:
        """Whether an incremental pass is possible (a full pass was read and nothing failed)."""
        return self._kept is not None

    @property
    def last(self) -> ObservedState | None:
        """The observed state of the last pass (None before the first or after `forget`)."""
        return self._kept.observed if self._kept is not None else None

    def forget(self) -> None:
        """Drop the kept state (after an error or a change of leader): the next pass is full."""
        self._kept = None

    def full(self, conn: Connection, *, now: datetime) -> Observation:
        """Read everything (a full pass); `Changes.EVERYTHING`."""
        mark = changes.mark(conn)  # before the store: a change in between is read twice
        view = findings.current_catalogue(conn)
        # what the last pass kept: the devices that did not change are answered as those
        # objects (a resync holds one fleet, not two)
        before = self._kept.rows if self._kept is not None else None
        rows = stored.load_devices(conn, view, previous=before)
        jobs = JobLedger.of(stored.load_jobs(conn, since=now - JOB_HORIZON))
        observed = stored.assemble(view, rows, jobs)
        self._kept = _Kept(view.version, view, rows, jobs, observed, mark, now, *_heaps(rows, jobs))
        return Observation(observed, Changes.EVERYTHING, len(rows.devices))

    def incremental(self, conn: Connection, *, now: datetime) -> Observation:
        """The observed state brought up to date from what changed since the last pass; a full
        read when there is no kept state."""
        kept = self._kept
        if kept is None:
            return self.full(conn, now=now)
        delta = changes.read(conn, kept.mark)
        view = findings.current_catalogue(conn)
        if view.version != kept.version:
            # a new catalogue re-maps every scan's ids (`enrichment`): read every device, and
            # tell the planner which of them came out different
            return self._after_catalogue(conn, kept, delta, view, now=now)
        since = now - JOB_HORIZON
        changed = delta.devices | _leaving(kept.leaving, kept.jobs, since=since)
        fresh = stored.load_devices(conn, view, changed)
        jobs = _merged(kept.jobs, changed, stored.load_jobs(conn, since=since, device_ids=changed))
        for device_id in changed:
            _push_leaving(kept.leaving, jobs, device_id)
        rows = _replaced(kept.rows, changed, fresh)
        offline = kept.offline
        for entry in _offline_at(fresh.devices.values()):
            heapq.heappush(offline, entry)
        _refresh_seen(conn, rows, offline, changed, now=now)
        catalogue_moved = rows.notes != kept.rows.notes
        observed = (
            stored.assemble(view, rows, jobs)
            if catalogue_moved
            else dataclasses.replace(
                kept.observed, devices=tuple(rows.devices.values()), scans=rows.scans, jobs=jobs
            )
        )
        self._kept = _Kept(
            kept.version, view, rows, jobs, observed, delta.mark, now, offline, kept.leaving
        )
        return Observation(
            observed, Changes(devices=frozenset(changed), catalogue=catalogue_moved), len(changed)
        )

    def _after_catalogue(
        self,
        conn: Connection,
        kept: _Kept,
        delta: changes.Delta,
        view: findings.CatalogueView,
        *,
        now: datetime,
    ) -> Observation:
        rows = stored.load_devices(conn, view)
        jobs = JobLedger.of(stored.load_jobs(conn, since=now - JOB_HORIZON))
        observed = stored.assemble(view, rows, jobs)
        differ = set(delta.devices) | differing_devices(kept.observed, observed, now=now)
        self._kept = _Kept(
            view.version, view, rows, jobs, observed, delta.mark, now, *_heaps(rows, jobs)
        )
        return Observation(
            observed, Changes(devices=frozenset(differ), catalogue=True), len(rows.devices)
        )


def differing_devices(before: ObservedState, after: ObservedState, *, now: datetime) -> set[str]:
    """Ids of the devices whose view, scan or jobs differ between two observed states
    (enrolled and retired ones included). `last_seen` counts only as the planner reads it:
    whether the device is online at `now`, and its value while offline. Purely computational.

    Equal views are equal as planned, so only the views that differ at all (a resync: the
    devices that checked in since the kept value was read) are compared the careful way."""
    old = {d.id: d for d in before.devices}
    new = {d.id: d for d in after.devices}
    differ = old.keys() ^ new.keys()  # enrolled or retired
    for device_id, view in new.items():
        was = old.get(device_id)
        if was is None or was is view or was == view:
            continue
        if _as_planned(was, now=now) != _as_planned(view, now=now):
            differ.add(device_id)
    # a re-read answers the kept scan object when it is equal (`load_devices(previous=)`):
    # identity settles most of them without comparing fields
    old_scans, new_scans = before.scans, after.scans
    differ |= {
        i
        for i in old_scans.keys() | new_scans.keys()
        if (was_scan := old_scans.get(i)) is not (scan := new_scans.get(i)) and was_scan != scan
    }
    old_jobs, new_jobs = before.jobs.by_device, after.jobs.by_device
    return differ | {
        i
        for i in old_jobs.keys() | new_jobs.keys()
        if (was_jobs := old_jobs.get(i)) is not (jobs := new_jobs.get(i)) and was_jobs != jobs
    }


# every field of a view but `last_seen`, as one tuple (a C-level getter, no copy of the view)
_BUT_SEEN = operator.attrgetter(
    *(f.name for f in dataclasses.fields(DeviceView) if f.name != "last_seen")
)


def _as_planned(view: DeviceView, *, now: datetime) -> tuple[Any, bool, datetime | None]:
    """The view as the planner reads it: `last_seen` only as online or not, and its value
    while offline."""
    online = view.is_online(now=now)
    return _BUT_SEEN(view), online, None if online else view.last_seen


def _heaps(
    rows: stored.DeviceRows, jobs: JobLedger
) -> tuple[list[tuple[datetime, str]], list[tuple[datetime, str]]]:
    """The observer's two heaps of a full read: when each device goes offline, when each
    device's oldest finished job leaves the job horizon."""
    offline = list(_offline_at(rows.devices.values()))
    heapq.heapify(offline)
    oldest = ((_oldest_finished(entry), i) for i, entry in jobs.by_device.items())
    leaving = [(at, device_id) for at, device_id in oldest if at is not None]
    heapq.heapify(leaving)
    return offline, leaving


def _oldest_finished(device_jobs: Iterable[JobView]) -> datetime | None:
    """When the first finished job of a device's jobs (oldest first) was created; a job in
    flight stays in the ledger whatever its age (`store.observed.load_jobs`)."""
    return next((job_order(j)[0] for j in device_jobs if not j.state.in_flight), None)


def _push_leaving(leaving: list[tuple[datetime, str]], jobs: JobLedger, device_id: str) -> None:
    oldest = _oldest_finished(jobs.of_device(device_id))
    if oldest is not None:
        heapq.heappush(leaving, (oldest, device_id))


def _leaving(leaving: list[tuple[datetime, str]], jobs: JobLedger, *, since: datetime) -> set[str]:
    """The devices with a finished job created before `since`: it leaves the job horizon.
    Only the heap's head is looked at, not the ledger."""
    found: set[str] = set()
    while leaving and leaving[0][0] < since:
        _created, device_id = heapq.heappop(leaving)
        oldest = _oldest_finished(jobs.of_device(device_id))
        if oldest is not None and oldest < since:
            found.add(device_id)
    return found


def _merged(
    kept: JobLedger, changed: frozenset[str] | set[str], fresh: Iterable[JobView]
) -> JobLedger:
    """The ledger with the jobs of `changed` devices replaced by `fresh` (in job order)."""
    if not changed:
        return kept
    by_device: dict[str, list[JobView]] = {device_id: [] for device_id in changed}
    for job in fresh:
        by_device[job.device_id].append(job)
    # tuples: taken as in job order, which `load_jobs` reads them in (not sorted again)
    return kept.replaced({device_id: tuple(jobs) for device_id, jobs in by_device.items()})


def _replaced(
    kept: stored.DeviceRows, changed: frozenset[str] | set[str], fresh: stored.DeviceRows
) -> stored.DeviceRows:
    """The kept rows with those of `changed` devices replaced by `fresh` (absent: retired).
    Copies the maps (C speed) and touches only the changed entries."""
    views, scans, notes = dict(kept.devices), dict(kept.scans), dict(kept.notes)
    for device_id in changed:
        _put(views, fresh.devices, device_id)
        _put(scans, fresh.scans, device_id)
        _put(notes, fresh.notes, device_id)
    if fresh.devices.keys() - kept.devices.keys():
        views = dict(sorted(views.items()))  # an enrolled device: id order, as a full read gives
    return stored.DeviceRows(views, scans, notes)


def _put(kept: dict[str, _T], fresh: dict[str, _T], device_id: str) -> None:
    """Replace (in place, keeping its position) or remove the entry of `device_id`."""
    value = fresh.get(device_id)
    if value is None:
        kept.pop(device_id, None)
    else:
        kept[device_id] = value


def _offline_at(views: Iterable[DeviceView]) -> Iterable[tuple[datetime, str]]:
    """When each view's `last_seen` stops counting as online (`core.observed.is_online`:
    online while checked in within `ONLINE_POLL_INTERVALS` poll intervals); never seen: never
    online, nothing to wait for."""
    for view in views:
        if view.last_seen is not None:
            yield view.last_seen + view.poll_interval * ONLINE_POLL_INTERVALS, view.id


def _refresh_seen(
    conn: Connection,
    rows: stored.DeviceRows,
    offline: list[tuple[datetime, str]],
    changed: set[str] | frozenset[str],
    *,
    now: datetime,
) -> None:
    """Read `last_seen` again for the devices whose kept value made them offline by `now`,
    and keep the newer values (in place)."""
    due: set[str] = set()
    while offline and offline[0][0] < now:
        _at, device_id = heapq.heappop(offline)
        if device_id not in changed and device_id in rows.devices:
            due.add(device_id)
    if not due:
        return
    for device_id, last_seen in stored.load_seen(conn, due).items():
        view = rows.devices[device_id]
        if view.last_seen is None or last_seen > view.last_seen:
            rows.devices[device_id] = fresh = dataclasses.replace(view, last_seen=last_seen)
            for entry in _offline_at([fresh]):
                heapq.heappush(offline, entry)
