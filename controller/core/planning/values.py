"""What a plan says: `Plan`, its alerts and device summaries, and the planner's constants.

Purely computational values, no side effects; `controller.core.plan` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from operator import attrgetter
from typing import Any

from controller.core import windows
from controller.core.compliance import BaselineCompliance, DeviceHistory
from controller.core.jobs import JobSpec
from controller.core.records import quick_init
from controller.kinds import PatchWindow
from controller.kinds.notifications import AlertSeverity, EventType

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCAN_DEADLINE = timedelta(days=1)
NO_HISTORY = DeviceHistory()
SCRIPT_JOB_LOOKBACK = timedelta(days=1)
SCAN_RETRY_AFTER = timedelta(hours=1)  # after an agent reported a scan job failed
REBOOT_PENDING_MESSAGE = "Patching completed and need to reboot."
# Alerts that report a condition (raised → resolved): while it holds the planner reports the
# alert's key in every pass (`Plan.holding`); an open alert of these types whose key is no
# longer reported is resolved. Other alerts report events (a scan initiated, a job expired).
CONDITION_TYPES = frozenset(
    {EventType.AGENT_OFFLINE_IN_WINDOW, EventType.REBOOT_PENDING, EventType.INSTALL_FAILED}
)
# How many device names a grouped info alert (`Search`, `Initiate`) quotes: enough to recognise
# the batch, bounded so one approval over 100,000 devices is still a one-line alert (issue 14.3)
GROUP_SAMPLE = 10


@quick_init
@dataclass(frozen=True, slots=True)
class AlertSpec:
    """An alert to raise. `key` identifies the transition: the store raises each key once.

    `tenant`: the tenant path of an alert about several devices (a grouped `Search` or
    `Initiate`); None means the device's tenant (or every tenant without a device).
    `details`: extra JSON figures stored with the alert (a group's counts and sample).
    """

    key: str
    type: EventType
    severity: AlertSeverity
    message: str
    device_id: str | None = None
    job_id: str | None = None
    patch_id: str | None = None
    tenant: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@quick_init
@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """Per-device figures for status and explain."""

    device_id: str
    installable: tuple[str, ...]
    pending_approval: tuple[str, ...]
    next_window: str | None  # "tenant/name"
    next_window_start: datetime | None
    install_job: str | None = None  # the install job this plan issues for the device
    # why the device's installable patches get no install in this pass although a window
    # occurrence accepts installs (one sentence), for explain: the planner's own reason
    install_hold: str | None = None


@dataclass(frozen=True)
class Plan:
    """What one reconcile decides. Empty `issue`/`cancel`/`expire`/`time_out`/`alerts` mean
    nothing to do.

    `supersede`: scan jobs the agent has not taken when a scan it reported on its own arrived
    after they were issued (`superseded`): the scan they asked for is there, and the device is
    free for its install in the same pass, whichever request came first.
    `expire`: jobs the agent never took before their pickup deadline (`no-agent`); `time_out`:
    started jobs past their run deadline, to be failed (`timed-out`, with the state they were in).
    """

    revision: str | None
    now: datetime
    issue: tuple[JobSpec, ...] = ()
    cancel: tuple[str, ...] = ()
    supersede: tuple[str, ...] = ()  # scan jobs not taken, made moot by a fresh scan
    expire: tuple[str, ...] = ()
    time_out: tuple[str, ...] = ()
    compliance: tuple[BaselineCompliance, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    devices: tuple[DeviceSummary, ...] = ()
    windows: Mapping[str, windows.WindowState] = field(default_factory=dict)
    # keys of the `CONDITION_TYPES` alerts whose condition holds at `now` (raised or not)
    holding: frozenset[str] = frozenset()

    # counted once per plan (`counts` and the status summary both ask, over every device)
    @cached_property
    def pending_approvals(self) -> int:
        return sum(map(len, map(_PENDING, self.devices)))

    @cached_property
    def installable(self) -> int:
        return sum(map(len, map(_INSTALLABLE, self.devices)))

    def counts(self) -> dict[str, int]:
        return {
            "issued": len(self.issue),
            "cancelled": len(self.cancel),
            "superseded": len(self.supersede),
            "expired": len(self.expire),
            "timedOut": len(self.time_out),
            "alerts": len(self.alerts),
            "devices": len(self.devices),
            "pendingApprovals": self.pending_approvals,
        }


_PENDING = attrgetter("pending_approval")
_INSTALLABLE = attrgetter("installable")


def window_key(window: PatchWindow) -> str:
    return f"{window.tenant or '*'}/{window.name}"
