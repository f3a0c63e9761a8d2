"""ObservedState: what the agents reported and what the controller already did, as plain values.

Purely declarative. The store builds it (`store.observe`), the planner reads it, tests write it by
hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

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


@dataclass(frozen=True)
class ObservedState:
    """Devices, their latest scans, the job ledger and the patch catalogue."""

    devices: tuple[DeviceView, ...] = ()
    scans: Mapping[str, ScanView] = field(default_factory=dict)  # device id → latest scan
    jobs: tuple[JobView, ...] = ()
    catalogue: Mapping[str, PatchRecord] = field(default_factory=dict)

    def patch(self, patch_id: str) -> PatchRecord:
        """The catalogue record, or a bare one for a patch only an agent knows about."""
        found = self.catalogue.get(patch_id)
        return found if found is not None else PatchRecord(id=patch_id)
