"""Instants as operators type them in filters: a date, an ISO 8601 time or a duration ago,
and the rule for a range of them.

Purely computational: `now` is a parameter. Shared by `patchctl alerts --since/--until` and the
dashboard's alert filters, so a saved view (`/alerts?since=24h`) means what the option means;
`ordered` is the one range rule of the command, the dashboard and `GET /api/v1/alerts`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_AGO = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
FORMS = "2026-12-01, 2026-12-01T08:00Z, 30m, 24h, 7d"


def parse_instant(value: str, *, now: datetime) -> datetime:
    """`2026-12-01` (midnight UTC), an ISO 8601 time (UTC unless it has an offset) or a
    duration before `now` in minutes, hours or days (`30m`, `24h`, `7d`).

    Raises ValueError naming the accepted forms."""
    text = value.strip()
    ago = _AGO.match(text)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        if len(text) == len("2026-12-01"):
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date, an ISO 8601 time or a duration ago ({FORMS})"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ordered(since: datetime | None, until: datetime | None) -> bool:
    """False when both ends are given and `until` is not after `since` (`since` inclusive,
    `until` exclusive: such a range holds no instant), else True. Each caller refuses a False
    in its own words, naming its own fields."""
    return since is None or until is None or until > since
