"""ObservedState: what the agents reported and what the controller already did, as plain values.

Purely declarative. The store builds it (`store.observe`), the planner reads it, tests write it by
hand.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain, compress
from operator import is_not

from controller.core.ids import JobId
from controller.core.patches import PatchRecord
from controller.core.records import quick_init
from controller.kinds.common import OsFamily

GATEWAY_ROLE = "gateway"
ONLINE_POLL_INTERVALS = 2  # DESIGN.md 3.8: online = checked in within two poll intervals


class JobKind(StrEnum):
    SCAN = "scan"
    INSTALL = "install"
    SCRIPT = "script"


class JobState(StrEnum):
    """A job's life: issued (pending), handed to the agent (delivered), then the agent's states."""

    PENDING = "pending"
    DELIVERED = "delivered"
    ACKED = "acked"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def in_flight(self) -> bool:
        return self in IN_FLIGHT

    @property
    def started(self) -> bool:
        """The agent has taken the job (acknowledged or further): it can no longer be cancelled."""
        return self not in {
            JobState.PENDING,
            JobState.DELIVERED,
            JobState.CANCELLED,
            JobState.EXPIRED,
        }


IN_FLIGHT = frozenset(
    {
        JobState.PENDING,
        JobState.DELIVERED,
        JobState.ACKED,
        JobState.DOWNLOADING,
        JobState.INSTALLING,
        JobState.REBOOTING,
    }
)


class PatchResult(StrEnum):
    INSTALLED = "installed"
    FAILED = "failed"
    SKIPPED = "skipped"


@quick_init
@dataclass(frozen=True, slots=True)
class DeviceView:
    """An enrolled device and its latest facts."""

    id: str
    tenant: str
    name: str
    os: OsFamily | None
    os_name: str = ""
    os_version: str = ""
    role: str = "server"
    labels: Mapping[str, str] = field(default_factory=dict)
    enrolled_at: datetime | None = None
    last_seen: datetime | None = None
    poll_interval: timedelta = timedelta(seconds=60)

    @property
    def is_gateway(self) -> bool:
        return self.role == GATEWAY_ROLE

    def is_online(self, *, now: datetime) -> bool:
        return is_online(self.last_seen, self.poll_interval, now=now)


def is_online(last_seen: datetime | None, poll_interval: timedelta, *, now: datetime) -> bool:
    """DESIGN.md 3.8: a device is online at `now` when it checked in (`last_seen`) within
    `ONLINE_POLL_INTERVALS` of its poll interval; never seen is offline. The one home of the
    rule: the planner reads it through `DeviceView.is_online`, the report writer to tell a
    device coming back online (`controller.store.reports`)."""
    return last_seen is not None and last_seen >= online_since(poll_interval, now=now)


def online_since(poll_interval: timedelta, *, now: datetime) -> datetime:
    """The earliest check-in that still counts as online at `now` (the rule of `is_online`,
    for queries that count devices in the database)."""
    return now - poll_interval * ONLINE_POLL_INTERVALS


@quick_init
@dataclass(frozen=True, slots=True)
class ScanView:
    """The latest scan of a device: missing and installed patch ids, and the OS reboot signal
    (`reboot_required`: the scan's own, or the running-kernel finding).

    `scanned_at` is the agent's own stamp (shown to people); `received_at` is when the server
    received it, the instant freshness is measured from (`fresh_at`): the agent's clock may be
    wrong (`controller.core.clocks`)."""

    scanned_at: datetime
    reboot_required: bool = False
    missing: tuple[str, ...] = ()
    installed: tuple[str, ...] = ()
    received_at: datetime | None = None  # None: as scanned (hand-written views, old rows)
    # installed patches the pending reboot is for, as the edge attributed them from the scan's
    # dates, the device's boot time and the running-kernel finding (`controller.core.reboots`)
    pending_reboot: tuple[str, ...] = ()

    @property
    def fresh_at(self) -> datetime:
        """The server-clock instant of the scan: its receive time, else its own stamp."""
        return self.received_at if self.received_at is not None else self.scanned_at


@quick_init
@dataclass(frozen=True, slots=True)
class JobView:
    """A job the controller issued earlier, with what the agent said about it."""

    id: JobId
    device_id: str
    kind: JobKind
    state: JobState
    patch_ids: tuple[str, ...] = ()
    window: str | None = None  # "tenant/name" of the PatchWindow an install belongs to
    occurrence: str | None = None  # the window occurrence (or trigger) key
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deadline: datetime | None = None
    results: Mapping[str, PatchResult] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    reboot_required: bool = False
    started_at: datetime | None = None  # the agent's first acked-or-later event
    run_timeout: timedelta | None = None  # from the start to a final state
    end_reason: str | None = None  # why the controller ended it (`jobs.EndReason`)


_NEVER = datetime.min.replace(tzinfo=UTC)  # a hand-written job view without a creation time


def job_order(job: JobView) -> tuple[datetime, str]:
    """The order of a device's jobs in the ledger: created, then id (oldest first)."""
    return job.created_at or _NEVER, job.id


DeviceJobs = tuple[JobView, ...]
"""One device's jobs in the ledger, oldest first (`job_order`)."""


class JobLedger(Collection[JobView]):
    """The job ledger kept by device: each device's jobs oldest first (`job_order`), the
    devices in id order. Iterating yields every job, device by device.

    Immutable. `replaced` answers a new ledger in which only the named devices' entries are
    new objects: a pass compares entries by identity to find the devices whose jobs changed,
    so its cost follows the jobs that changed, not a month of ledger (issue 14: 410,000 jobs at
    100,000 devices). `in_flight`: the devices with a job in flight.
    """

    __slots__ = ("_by_device", "_in_flight", "_size")

    def __init__(
        self,
        by_device: Mapping[str, DeviceJobs] | None = None,
        *,
        size: int | None = None,
        in_flight: frozenset[str] | None = None,
    ) -> None:
        """`by_device`: device id → its jobs, oldest first, no empty entry, ids in order (as
        `of` and `replaced` make them); `size` and `in_flight` when known already."""
        self._by_device: Mapping[str, DeviceJobs] = by_device if by_device is not None else {}
        self._size = sum(map(len, self._by_device.values())) if size is None else size
        self._in_flight = (
            frozenset(d for d, jobs in self._by_device.items() if _any_in_flight(jobs))
            if in_flight is None
            else in_flight
        )

    @classmethod
    def of(cls, jobs: Iterable[JobView]) -> JobLedger:
        """The ledger of `jobs`, in any order."""
        grouped: dict[str, list[JobView]] = {}
        for job in jobs:
            grouped.setdefault(job.device_id, []).append(job)
        return cls({i: tuple(sorted(grouped[i], key=job_order)) for i in sorted(grouped)})

    @property
    def by_device(self) -> Mapping[str, DeviceJobs]:
        """Device id → its jobs, oldest first (devices with none are absent)."""
        return self._by_device

    @property
    def in_flight(self) -> frozenset[str]:
        """The ids of the devices with a job in flight."""
        return self._in_flight

    def of_device(self, device_id: str) -> DeviceJobs:
        """`device_id`'s jobs, oldest first; () when it has none."""
        return self._by_device.get(device_id, ())

    def replaced(self, fresh: Mapping[str, Iterable[JobView]]) -> JobLedger:
        """This ledger with the jobs of each device in `fresh` replaced (no jobs: it leaves);
        a tuple is taken as in job order, any other iterable is sorted. Copies the map (C
        speed) and touches only those devices."""
        by_device = dict(self._by_device)
        in_flight = set(self._in_flight)
        size = self._size
        added = False
        for device_id, jobs in fresh.items():
            size -= len(by_device.get(device_id, ()))
            now = jobs if isinstance(jobs, tuple) else tuple(sorted(jobs, key=job_order))
            in_flight.discard(device_id)
            if not now:
                by_device.pop(device_id, None)
                continue
            added = added or device_id not in by_device
            by_device[device_id] = now
            size += len(now)
            if _any_in_flight(now):
                in_flight.add(device_id)
        if added:  # a device's first job: id order, as `of` makes it (nearly sorted: quick)
            by_device = dict(sorted(by_device.items()))
        return JobLedger(by_device, size=size, in_flight=frozenset(in_flight))

    def differing(self, earlier: JobLedger) -> set[str]:
        """The devices whose entry here is not the very object it is in `earlier` (those
        `replaced` touched since, devices that joined or left included): a superset of the
        devices whose jobs changed, found in C when the same devices have jobs."""
        before, after = earlier.by_device, self._by_device
        if before is after:
            return set()
        if before.keys() == after.keys():  # the same ids, both in id order
            return set(compress(after.keys(), map(is_not, before.values(), after.values())))
        missing: DeviceJobs = ()
        return set(before.keys() ^ after.keys()) | {
            device_id
            for device_id, jobs in after.items()
            if before.get(device_id, missing) is not jobs
        }

    def __iter__(self) -> Iterator[JobView]:
        return chain.from_iterable(self._by_device.values())

    def __len__(self) -> int:
        return self._size

    def __contains__(self, job: object) -> bool:
        return isinstance(job, JobView) and job in self._by_device.get(job.device_id, ())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobLedger):
            return self._by_device == other._by_device
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JobLedger({len(self._by_device)} devices, {self._size} jobs)"


def _any_in_flight(jobs: DeviceJobs) -> bool:
    return any(job.state.in_flight for job in jobs)


@dataclass(frozen=True)
class ObservedState:
    """Devices, their latest scans, the job ledger and the patch catalogue.

    `jobs` may be given as any iterable of jobs: it is kept as a `JobLedger`."""

    devices: tuple[DeviceView, ...] = ()
    scans: Mapping[str, ScanView] = field(default_factory=dict)  # device id → latest scan
    jobs: JobLedger = field(default_factory=JobLedger)
    catalogue: Mapping[str, PatchRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.jobs, JobLedger):
            object.__setattr__(self, "jobs", JobLedger.of(self.jobs))

    def patch(self, patch_id: str) -> PatchRecord:
        """The catalogue record, or a bare one for a patch only an agent knows about."""
        found = self.catalogue.get(patch_id)
        return found if found is not None else PatchRecord(id=patch_id)
