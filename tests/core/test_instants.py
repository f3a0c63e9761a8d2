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
