"""Instants as operators type them in filters: a date, an ISO 8601 time or a duration ago,
and the rule for a range of them.

Purely computational: `now` is a parameter. Shared by `patchctl alerts --since/--until` and the
dashboard's alert filters, so a saved view (`/alerts?since=24h`) means what the option means;
`ordered` is the one range rule of the command, the dashboard and `GET /api/v1/alerts`;
`parse_time` (no "ago" form) reads every other time option of the CLI (`--now`, `audit
--since`).
Both refuse instants outside [`EARLIEST`, `LATEST`), which no computation can overflow from.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_AGO = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
FORMS = "2026-12-01, 2026-12-01T08:00Z, 30m, 24h, 7d"
TIME_FORMS = "2026-12-01 or 2026-12-01T08:00Z"
# The instants an operator may name. Nothing patchctl stores is older than the Unix epoch, and
# the planner adds up to a century of durations (`kinds.common.MAX_DURATION`) to `now`: the
# upper bound keeps every such sum inside the calendar `datetime` holds (year 9999).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
RANGE = "between 1970-01-01 and 9000-01-01"


def parse_instant(value: str, *, now: datetime) -> datetime:
    """`2026-12-01` (midnight UTC), an ISO 8601 time (UTC unless it has an offset) or a
    duration before `now` in minutes, hours or days (`30m`, `24h`, `7d`), within
    [`EARLIEST`, `LATEST`).

    Raises ValueError naming the accepted forms, or the range."""
    ago = _AGO.match(value.strip())
    if ago is None:
        return parse_time(value, forms=f"a date, an ISO 8601 time or a duration ago ({FORMS})")
    try:
        moment = now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    except OverflowError:
        moment = datetime.min.replace(tzinfo=UTC)
    return _within_range(moment, value)


def parse_time(
    value: str, *, forms: str = f"a date or an ISO 8601 time ({TIME_FORMS})"
) -> datetime:
    """`2026-12-01` (midnight UTC) or an ISO 8601 time (UTC unless it has an offset), within
    [`EARLIEST`, `LATEST`): `--now`, `--since` and the like.

    Raises ValueError quoting the value and naming `forms`, or the range."""
    text = value.strip()
    try:
        if len(text) == len("2026-12-01"):
            parsed = datetime.combine(date.fromisoformat(text), time(0), UTC)
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not {forms}") from None
    return _within_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), value)


def _within_range(moment: datetime, value: str) -> datetime:
    if not in_range(moment):
        raise ValueError(f"{value!r} is not {RANGE}")
    return moment


def in_range(moment: datetime) -> bool:
    """Whether an aware `moment` lies in [`EARLIEST`, `LATEST`), where no computation on it
    overflows (the read API's `since`/`until` check their values with it too)."""
    try:
        return EARLIEST <= moment < LATEST
    except OverflowError:  # comparing converts to UTC: year 1 with a positive offset
        return False


def ordered(since: datetime | None, until: datetime | None) -> bool:
    """False when both ends are given and `until` is not after `since` (`since` inclusive,
    `until` exclusive: such a range holds no instant), else True. Each caller refuses a False
    in its own words, naming its own fields."""
    return since is None or until is None or until > since
