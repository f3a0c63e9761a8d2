"""Which installed patches wait for a pending reboot (DESIGN.md 3.6 and 3.9).

Purely computational. The OS decides whether a reboot is pending (the scan's `rebootRequired`,
or a running kernel older than the newest installed one), whoever installed the patches. Which
installed patches that reboot puts in effect is attributed from what is known, in this order:

- a patch the agent dates (`installedAt`) after the device's last boot: its facts'
  `lastBootAt`, else the scan time minus `uptime`;
- without a boot time, a patch dated within `UNDATED_BOOT_LOOKBACK` before the scan (an
  install and its reboot normally fall in one maintenance night);
- a patch a patchctl install job installed and reported a reboot for (the job ledger,
  `plan.device_history`);
- a patch the running-kernel finding names (`applicability.detect_pending_reboot`).

Installed dates and boot times are both the agent's clock, so comparing them is sound even when
that clock is wrong; nothing here is compared with the server's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

UNDATED_BOOT_LOOKBACK = timedelta(days=1)


def boot_time(
    *, last_boot_at: datetime | None, uptime_seconds: int | None, scanned_at: datetime
) -> datetime | None:
    """When the device last booted, by its own clock: `lastBootAt`, else the scan time minus
    `uptime` (agents send both with the scan), else None."""
    if last_boot_at is not None:
        return last_boot_at
    if uptime_seconds is not None and uptime_seconds >= 0:
        return scanned_at - timedelta(seconds=uptime_seconds)
    return None


def installed_since_boot(
    installed: Iterable[tuple[str, datetime | None]],
    *,
    booted_at: datetime | None,
    scanned_at: datetime,
) -> tuple[str, ...]:
    """The ids of the (patch id, installed at) pairs a pending reboot is for: installed after
    `booted_at`, or, with no boot time, within `UNDATED_BOOT_LOOKBACK` before `scanned_at`.
    An undated patch is never attributed by date."""
    since = booted_at if booted_at is not None else scanned_at - UNDATED_BOOT_LOOKBACK
    return tuple(pid for pid, at in installed if at is not None and at > since)
