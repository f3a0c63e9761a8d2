"""The agent's clock against the server's: what an agent-reported instant may be trusted for.

Purely computational. Agents stamp their scans (`scannedAt`) with their own clock, which can be
wrong by minutes or years (a dead CMOS battery, a VM restored from a snapshot, no NTP). The
server's clock decides: a scan dated further ahead than `MAX_CLOCK_SKEW` is refused at the
door (DESIGN.md 4: "`scannedAt` is bounded by the server's clock"), a stored one dated in the
future (stored before this rule) never blocks newer reports, and freshness ("scan older than
N") is measured from when the server received the scan, never from `scannedAt`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# Tolerance for an agent clock running ahead of the server's. Five minutes is Kerberos's
# default maximum skew (RFC 4120 section 1.6, MIT `clockskew`), the usual bound for hosts that
# are expected to run NTP.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def is_ahead(instant: datetime, *, now: datetime) -> bool:
    """Whether an agent-reported `instant` is later than the server's `now` by more than
    `MAX_CLOCK_SKEW` (then it is not a time the agent can have observed)."""
    return instant > now + MAX_CLOCK_SKEW


def latest_trusted(instant: datetime | None, *, now: datetime) -> datetime | None:
    """A stored agent instant as an ordering bound: None (no bound) when it lies beyond the
    server's clock plus `MAX_CLOCK_SKEW`, so a scan once stored with a wrong clock never makes
    every later, correct scan look older."""
    if instant is None or is_ahead(instant, now=now):
        return None
    return instant
