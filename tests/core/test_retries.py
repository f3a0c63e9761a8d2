"""The one retry decision: which answers to retry, the Retry-After header, backoff and its cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.retries import RetryPolicy, is_retryable, parse_retry_after

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20", timedelta(seconds=20)),
        (" 0 ", timedelta(0)),
        ("Mon, 07 Dec 2026 06:00:20 GMT", timedelta(seconds=20)),
        ("Mon, 07 Dec 2026 07:00:00 +0000", timedelta(hours=1)),
        ("Mon, 07 Dec 2026 05:00:00 GMT", timedelta(0)),
        ("Mon, 07 Dec 2026 06:00:20 -0000", timedelta(seconds=20)),
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("Mon, 32 Dec 2026 06:00:20 GMT", None),
    ],
    ids=[
        "seconds",
        "zero",
        "http-date",
        "numeric-zone",
        "past-date",
        "unknown-zone",
        "absent",
        "empty",
        "negative",
        "fraction",
        "word",
        "impossible-date",
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(
    value: str | None, expected: timedelta | None
) -> None:
    """Retry-After gives a wait from now; anything unreadable gives none."""
    assert expected == parse_retry_after(value, now=NOW)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(408, True), (425, True), (429, True), (500, True), (503, True), (400, False), (404, False)],
    ids=["408", "425", "429", "500", "503", "400", "404"],
)
def test_throttling_and_server_errors_are_retryable(status: int, expected: bool) -> None:
    """Waiting can help a throttled or failing server, never a refused request."""
    assert expected == is_retryable(status)


@pytest.mark.parametrize(
    ("attempt", "retry_after", "seconds"),
    [
        (1, None, 2),
        (3, None, 8),
        (1, 20, 20),
        (1, 1, 2),
        (4, 3, 16),
        (1, 3600, 3600),
        (1, 7200, 3600),
        (20, None, 300),
    ],
    ids=[
        "backoff",
        "third",
        "server-asks-longer",
        "server-asks-shorter",
        "backoff-longer",
        "an-hour-honoured",
        "capped-retry-after",
        "capped-backoff",
    ],
)
def test_the_delay_is_never_sooner_than_asked_nor_past_the_cap(
    attempt: int, retry_after: int | None, seconds: int
) -> None:
    """The wait is the longer of backoff (at most five minutes) and Retry-After (at most an
    hour)."""
    wait = timedelta(seconds=retry_after) if retry_after is not None else None
    assert timedelta(seconds=seconds) == RetryPolicy().delay(attempt, retry_after=wait)


def test_a_policy_with_delays_out_of_order_is_refused() -> None:
    """The cap cannot be below the first delay."""
    with pytest.raises(ValueError, match="first_delay <= max_delay"):
        RetryPolicy(first_delay=timedelta(minutes=10), max_delay=timedelta(minutes=1))
