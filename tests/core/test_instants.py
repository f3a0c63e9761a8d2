"""`instants.parse_instant`: the forms an operator types into `--since`/`--until` and the
dashboard's alert filters; `instants.ordered`: the rule for a range of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.core import instants

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00Z", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("2026-12-01T08:00", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        (
            "2026-12-01T08:00+01:00",
            datetime(2026, 12, 1, 8, 0, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        (" 7d ", NOW - timedelta(days=7)),
    ],
    ids=["date", "utc", "naive-is-utc", "offset", "minutes", "hours", "days"],
)
def test_accepted_forms(text: str, expected: datetime) -> None:
    """A date, an ISO 8601 time or a duration before now."""
    assert expected == instants.parse_instant(text, now=NOW)


@pytest.mark.parametrize("text", ["yesterday", "7w", "-1d", "2026-13-01", ""])
def test_anything_else_names_the_forms(text: str) -> None:
    """Other text raises ValueError quoting it and listing the accepted forms."""
    with pytest.raises(ValueError, match=r"is not a date.*\(2026-12-01, 2026-12-01T08:00Z"):
        instants.parse_instant(text, now=NOW)


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, True),
        (NOW, None, True),
        (None, NOW, True),
        (NOW, NOW + timedelta(seconds=1), True),
        (NOW, NOW, False),
        (NOW, NOW - timedelta(days=30), False),
    ],
    ids=["open", "since-only", "until-only", "after", "same-instant", "before"],
)
def test_ordered(since: datetime | None, until: datetime | None, expected: bool) -> None:
    """A range is ordered unless `until` (exclusive) is not after `since` (inclusive)."""
    assert expected == instants.ordered(since, until)


@pytest.mark.parametrize(
    "text",
    ["999999d", "1969-12-31", "0001-01-01T00:00+05:00", "9000-01-01", "9999-12-31T23:00-05:00"],
)
def test_instants_outside_the_range_are_refused(text: str) -> None:
    """Before 1970 or from 9000 on is a ValueError naming the range, never an OverflowError."""
    with pytest.raises(ValueError, match="is not between 1970-01-01 and 9000-01-01"):
        instants.parse_instant(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01", instants.EARLIEST),
        ("8999-12-31T23:59Z", datetime(8999, 12, 31, 23, 59, tzinfo=UTC)),
    ],
    ids=["earliest", "latest"],
)
def test_times_at_the_edges_of_the_range(text: str, expected: datetime) -> None:
    """`parse_time` accepts the range's first day and its last minute."""
    assert expected == instants.parse_time(text)


def test_parse_time_has_no_ago_form() -> None:
    """`--now 7d` is not a time: only `alerts` filters read durations ago."""
    with pytest.raises(ValueError, match=r"'7d' is not a date or an ISO 8601 time"):
        instants.parse_time("7d")
