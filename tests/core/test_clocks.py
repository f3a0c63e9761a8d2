"""The agent's clock against the server's: what an agent-reported instant is trusted for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core import clocks

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(timedelta(hours=-3), False, id="in-the-past"),
        pytest.param(timedelta(0), False, id="now"),
        pytest.param(clocks.MAX_CLOCK_SKEW, False, id="at-the-skew-bound"),
        pytest.param(clocks.MAX_CLOCK_SKEW + timedelta(seconds=1), True, id="past-the-bound"),
        pytest.param(timedelta(days=3650), True, id="ten-years-ahead"),
    ],
)
def test_is_ahead_allows_five_minutes_of_skew(offset: timedelta, expected: bool) -> None:
    """An instant is ahead only when it is later than the server's clock plus the skew."""
    assert expected == clocks.is_ahead(NOW + offset, now=NOW)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(NOW - timedelta(hours=1), NOW - timedelta(hours=1), id="past-kept"),
        pytest.param(NOW + timedelta(minutes=4), NOW + timedelta(minutes=4), id="small-skew-kept"),
        pytest.param(NOW + timedelta(days=400), None, id="far-future-dropped"),
    ],
)
def test_latest_trusted_drops_instants_beyond_the_server_clock(
    instant: datetime | None, expected: datetime | None
) -> None:
    """A stored instant from a wrong clock is no ordering bound; any other is kept as it is."""
    assert expected == clocks.latest_trusted(instant, now=NOW)
