"""The patch-window calendar: recurrences, open/cutoff boundaries, DST, catch-up and keys.

Real models and real tzdata throughout; instants are written as UTC ISO strings (`...Z`).
DST dates of 2026: Europe/Berlin springs forward on 29 March at 01:00Z (02:00 -> 03:00) and falls
back on 25 October at 01:00Z (03:00 -> 02:00); America/New_York on 8 March at 07:00Z and 1 November
at 06:00Z; Australia/Sydney falls back on 5 April (04 April 16:00Z) and springs forward on 4 October
(03 October 16:00Z).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from controller.core import windows
from controller.kinds.reports import ReportScheduleSpec
from controller.kinds.scripts import ScriptJobSpec
from controller.kinds.windows import PatchWindowSpec


def at(text: str) -> datetime:
    """An aware UTC instant from `2026-12-06T01:00Z`."""
    return datetime.fromisoformat(text).astimezone(UTC)


def window(recurrence: dict[str, Any], **overrides: Any) -> PatchWindowSpec:
    """A PatchWindowSpec as YAML would spell it; Europe/Berlin, 4h, cutoff 1h unless overridden."""
    document: dict[str, Any] = {
        "targets": {"groups": ["prod-windows"]},
        "recurrence": recurrence,
        "timezone": "Europe/Berlin",
        "duration": "4h",
        "cutoff": "1h",
    }
    document.update(overrides)
    return PatchWindowSpec.model_validate(document)


def key_at(spec: PatchWindowSpec, now: str) -> str | None:
    occurrence = windows.occurrence_at(spec, now=at(now))
    return None if occurrence is None else occurrence.key


def next_key(spec: PatchWindowSpec, after: str) -> str | None:
    occurrence = windows.next_occurrence(spec, after=at(after))
    return None if occurrence is None else occurrence.key


SUNDAY_0200_BERLIN = window({"cron": "0 2 * * SUN"})  # 2026-12-06 02:00 CET = 01:00Z


# --- Patch Tuesday -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        (1, date(2026, 1, 13)),
        (2, date(2026, 2, 10)),
        (3, date(2026, 3, 10)),
        (4, date(2026, 4, 14)),
        (5, date(2026, 5, 12)),
        (6, date(2026, 6, 9)),
        (7, date(2026, 7, 14)),
        (8, date(2026, 8, 11)),
        (9, date(2026, 9, 8)),
        (10, date(2026, 10, 13)),
        (11, date(2026, 11, 10)),
        (12, date(2026, 12, 8)),
    ],
    ids=["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
)
def test_patch_tuesday_2026(month: int, expected: date) -> None:
    """Patch Tuesday is the second Tuesday of each month of 2026, as on the calendar."""
    assert expected == windows.patch_tuesday(2026, month)


@pytest.mark.parametrize(
    ("offset_days", "clock", "after", "expected"),
    [
        pytest.param(
            0, "02:00", "2026-12-01T00:00Z", "2026-12-08T01:00Z", id="patch-tuesday-itself"
        ),
        pytest.param(
            5, "03:30", "2026-06-01T00:00Z", "2026-06-14T01:30Z", id="sunday-after-summer"
        ),
        pytest.param(
            26, "02:00", "2026-01-31T00:00Z", "2026-02-08T01:00Z", id="offset-into-next-month"
        ),
        pytest.param(
            26, "02:00", "2026-12-31T00:00Z", "2027-01-03T01:00Z", id="offset-into-next-year"
        ),
        pytest.param(
            26, "02:00", "2027-01-03T01:00Z", "2027-02-07T01:00Z", id="after-a-spilled-start"
        ),
        pytest.param(3, "02:00", "2026-03-13T00:59Z", "2026-03-13T01:00Z", id="just-before-start"),
        pytest.param(3, "02:00", "2026-03-13T01:00Z", "2026-04-17T00:00Z", id="at-start-is-past"),
    ],
)
def test_patch_tuesday_next_occurrence(
    offset_days: int, clock: str, after: str, expected: str
) -> None:
    """A patchTuesday window starts offsetDays after Patch Tuesday, possibly next month or year."""
    spec = window({"patchTuesday": {"offsetDays": offset_days, "at": clock}})

    assert expected == next_key(spec, after)


# --- open, cutoff and close --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-12-06T00:59:59Z", (None, False), id="just-before-start"),
        pytest.param("2026-12-06T01:00Z", ("2026-12-06T01:00Z", True), id="at-start"),
        pytest.param("2026-12-06T03:59:59Z", ("2026-12-06T01:00Z", True), id="before-cutoff"),
        pytest.param("2026-12-06T04:00Z", ("2026-12-06T01:00Z", False), id="at-cutoff"),
        pytest.param("2026-12-06T04:59:59Z", ("2026-12-06T01:00Z", False), id="last-second"),
        pytest.param("2026-12-06T05:00Z", (None, False), id="at-end"),
        pytest.param("2026-12-09T12:00Z", (None, False), id="mid-week"),
    ],
)
def test_weekly_window_boundaries(now: str, expected: tuple[str | None, bool]) -> None:
    """A weekly window is open on [start, end) and accepts new installs on [start, cutoff)."""
    occurrence = windows.occurrence_at(SUNDAY_0200_BERLIN, now=at(now))

    actual = (
        None if occurrence is None else occurrence.key,
        occurrence is not None and occurrence.accepts_new_installs(at(now)),
    )
    assert expected == actual


def test_occurrence_fields() -> None:
    """An occurrence carries its UTC start, end, cutoff instant and key."""
    expected = windows.Occurrence(
        start=at("2026-12-06T01:00Z"),
        end=at("2026-12-06T05:00Z"),
        cutoff_at=at("2026-12-06T04:00Z"),
        key="2026-12-06T01:00Z",
    )

    assert expected == windows.occurrence_at(SUNDAY_0200_BERLIN, now=at("2026-12-06T02:00Z"))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-12-05T12:00Z", (False, False), id="before"),
        pytest.param("2026-12-06T01:00Z", (True, True), id="start"),
        pytest.param("2026-12-06T04:00Z", (True, False), id="cutoff"),
        pytest.param("2026-12-06T05:00Z", (False, False), id="end"),
    ],
)
def test_occurrence_predicates(now: str, expected: tuple[bool, bool]) -> None:
    """`is_open` and `accepts_new_installs` agree with the half-open intervals."""
    occurrence = windows.Occurrence.starting(
        at("2026-12-06T01:00Z"), duration=timedelta(hours=4), cutoff=timedelta(hours=1)
    )

    assert expected == (occurrence.is_open(at(now)), occurrence.accepts_new_installs(at(now)))


@pytest.mark.parametrize(
    ("recurrence", "duration", "now", "expected"),
    [
        pytest.param(
            {"cron": "0 22 * * SAT"},
            "6h",
            "2026-12-06T00:30Z",
            "2026-12-05T21:00Z",
            id="saturday-night-after-midnight",
        ),
        pytest.param(
            {"cron": "0 22 * * SAT"}, "6h", "2026-12-06T03:00Z", None, id="saturday-night-closed"
        ),
        pytest.param(
            {"cron": "0 20 * * FRI"},
            "2d10h",
            "2026-12-07T04:59Z",
            "2026-12-04T19:00Z",
            id="weekend-window-monday-morning",
        ),
        pytest.param(
            {"cron": "0 20 * * FRI"},
            "2d10h",
            "2026-12-07T05:00Z",
            None,
            id="weekend-window-closed",
        ),
        pytest.param(
            {"cron": "0 * * * *"},
            "3h",
            "2026-12-06T10:30Z",
            "2026-12-06T10:00Z",
            id="overlapping-latest-started",
        ),
        pytest.param(
            {"cron": "* * * * *"},
            "52w",
            "2026-12-06T10:30:30Z",
            "2026-12-06T10:30Z",
            id="minutely-for-a-year",
        ),
        pytest.param({"cron": "0 2 1 1 *"}, "1d", "2026-06-01T00:00Z", None, id="yearly-closed"),
    ],
)
def test_occurrence_at(
    recurrence: dict[str, Any], duration: str, now: str, expected: str | None
) -> None:
    """The open occurrence is the latest start whose duration still covers `now`."""
    spec = window(recurrence, duration=duration, cutoff="0s")

    assert expected == key_at(spec, now)


# --- DST --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "recurrence", "after", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * SUN"},
            "2026-03-28T12:00Z",
            "2026-03-29T01:00Z",
            id="berlin-spring-cron-gap-starts-at-0300",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * SUN"},
            "2026-03-29T01:00Z",
            "2026-04-05T00:30Z",
            id="berlin-spring-cron-then-summer-time",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "0 1 * * SUN"},
            "2026-03-28T12:00Z",
            "2026-03-29T00:00Z",
            id="berlin-spring-cron-before-gap",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * SUN"},
            "2026-10-24T12:00Z",
            "2026-10-25T00:30Z",
            id="berlin-fall-cron-first-pass",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * SUN"},
            "2026-10-25T00:30Z",
            "2026-11-01T01:30Z",
            id="berlin-fall-cron-never-twice",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * SUN"},
            "2026-10-25T01:15Z",
            "2026-11-01T01:30Z",
            id="berlin-fall-cron-from-second-pass",
        ),
        pytest.param(
            "Europe/Berlin",
            {"patchTuesday": {"offsetDays": 19, "at": "02:30"}},
            "2026-03-20T00:00Z",
            "2026-03-29T01:00Z",
            id="berlin-spring-patch-tuesday",
        ),
        pytest.param(
            "Europe/Berlin",
            {"patchTuesday": {"offsetDays": 12, "at": "02:30"}},
            "2026-10-20T00:00Z",
            "2026-10-25T00:30Z",
            id="berlin-fall-patch-tuesday",
        ),
        pytest.param(
            "Europe/Berlin",
            {"once": "2026-03-29T02:30"},
            "2026-03-01T00:00Z",
            "2026-03-29T01:00Z",
            id="berlin-spring-once",
        ),
        pytest.param(
            "Europe/Berlin",
            {"once": "2026-10-25T02:30"},
            "2026-10-01T00:00Z",
            "2026-10-25T00:30Z",
            id="berlin-fall-once",
        ),
        pytest.param(
            "America/New_York",
            {"cron": "0 2 * * SUN"},
            "2026-03-07T12:00Z",
            "2026-03-08T07:00Z",
            id="new-york-spring-gap-starts-at-0300-edt",
        ),
        pytest.param(
            "America/New_York",
            {"cron": "30 1 * * SUN"},
            "2026-10-31T12:00Z",
            "2026-11-01T05:30Z",
            id="new-york-fall-first-pass-edt",
        ),
        pytest.param(
            "America/New_York",
            {"cron": "30 1 * * SUN"},
            "2026-11-01T05:30Z",
            "2026-11-08T06:30Z",
            id="new-york-fall-never-twice",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "0 2 * * SUN"},
            "2026-01-01T00:00Z",
            "2026-01-03T15:00Z",
            id="sydney-summer-aedt",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "0 2 * * SUN"},
            "2026-07-01T00:00Z",
            "2026-07-04T16:00Z",
            id="sydney-winter-aest",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "30 2 * * SUN"},
            "2026-04-03T00:00Z",
            "2026-04-04T15:30Z",
            id="sydney-april-fall-first-pass-aedt",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "30 2 * * SUN"},
            "2026-04-04T15:30Z",
            "2026-04-11T16:30Z",
            id="sydney-april-fall-never-twice",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "30 2 * * SUN"},
            "2026-10-02T00:00Z",
            "2026-10-03T16:00Z",
            id="sydney-october-spring-gap-starts-at-0300",
        ),
    ],
)
def test_dst_start(timezone: str, recurrence: dict[str, Any], after: str, expected: str) -> None:
    """Missing local times start right after the gap; ambiguous ones at their first pass, once."""
    spec = window(recurrence, timezone=timezone)

    assert expected == next_key(spec, after)


@pytest.mark.parametrize(
    ("timezone", "recurrence", "start", "end", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * *"},
            "2026-10-24T00:00Z",
            "2026-10-27T00:00Z",
            ["2026-10-24T00:30Z", "2026-10-25T00:30Z", "2026-10-26T01:30Z"],
            id="berlin-fall-daily",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "30 2 * * *"},
            "2026-03-28T00:00Z",
            "2026-03-31T00:00Z",
            ["2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z"],
            id="berlin-spring-daily",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "0 * * * *"},
            "2026-10-24T22:00Z",
            "2026-10-25T04:00Z",
            [
                "2026-10-24T22:00Z",
                "2026-10-24T23:00Z",
                "2026-10-25T00:00Z",
                "2026-10-25T02:00Z",
                "2026-10-25T03:00Z",
            ],
            id="berlin-fall-hourly-skips-repeated-hour",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "*/30 2 * * *"},
            "2026-03-29T00:00Z",
            "2026-03-29T12:00Z",
            ["2026-03-29T01:00Z"],
            id="berlin-spring-half-hourly-in-gap-opens-once",
        ),
        pytest.param(
            "America/New_York",
            {"cron": "30 1 * * *"},
            "2026-11-01T00:00Z",
            "2026-11-02T00:00Z",
            ["2026-11-01T05:30Z"],
            id="new-york-fall-daily",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "30 2 * * *"},
            "2026-04-04T12:00Z",
            "2026-04-05T12:00Z",
            ["2026-04-04T15:30Z"],
            id="sydney-april-daily",
        ),
    ],
)
def test_dst_starts_fire_once(
    timezone: str, recurrence: dict[str, Any], start: str, end: str, expected: list[str]
) -> None:
    """Across a DST change each local start time fires exactly once."""
    spec = window(recurrence, timezone=timezone, duration="1m", cutoff="0s")

    actual = windows.occurrences_between(spec, start=at(start), end=at(end))

    assert expected == [occurrence.key for occurrence in actual]


@pytest.mark.parametrize(
    ("timezone", "recurrence", "after", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            {"cron": "0 1 * * SUN"},
            "2026-03-28T12:00Z",
            ("2026-03-29T00:00Z", "2026-03-29T04:00Z"),
            id="berlin-spring-4h-is-5h-on-the-wall",
        ),
        pytest.param(
            "Europe/Berlin",
            {"cron": "0 1 * * SUN"},
            "2026-10-24T12:00Z",
            ("2026-10-24T23:00Z", "2026-10-25T03:00Z"),
            id="berlin-fall-4h-is-3h-on-the-wall",
        ),
        pytest.param(
            "Australia/Sydney",
            {"cron": "0 1 * * SUN"},
            "2026-10-02T12:00Z",
            ("2026-10-03T15:00Z", "2026-10-03T19:00Z"),
            id="sydney-spring-4h",
        ),
    ],
)
def test_duration_is_elapsed_time(
    timezone: str, recurrence: dict[str, Any], after: str, expected: tuple[str, str]
) -> None:
    """A 4h window lasts 4 real hours even when the wall clock jumps inside it."""
    occurrence = windows.next_occurrence(window(recurrence, timezone=timezone), after=at(after))

    assert occurrence is not None
    assert (at(expected[0]), at(expected[1])) == (occurrence.start, occurrence.end)


@pytest.mark.parametrize(
    ("duration", "now", "expected"),
    [
        pytest.param("2h", "2026-10-25T01:45Z", "2026-10-25T00:30Z", id="open-in-second-pass"),
        pytest.param("1h", "2026-10-25T01:45Z", None, id="closed-in-second-pass"),
        pytest.param("1h", "2026-10-25T00:45Z", "2026-10-25T00:30Z", id="open-in-first-pass"),
    ],
)
def test_occurrence_at_in_repeated_hour(duration: str, now: str, expected: str | None) -> None:
    """In the repeated hour of fall back the open occurrence is found from either pass."""
    spec = window({"cron": "30 2 * * SUN"}, duration=duration, cutoff="0s")

    assert expected == key_at(spec, now)


@pytest.mark.parametrize(
    "recurrence",
    [
        pytest.param({"cron": "30 2 * * *"}, id="daily-0230"),
        pytest.param({"cron": "0 * * * *"}, id="hourly"),
        pytest.param({"cron": "*/20 1-3 * * *"}, id="every-20-minutes-at-night"),
        pytest.param({"patchTuesday": {"offsetDays": 19, "at": "02:30"}}, id="patch-tuesday"),
    ],
)
@pytest.mark.parametrize(
    ("timezone", "start"),
    [
        pytest.param("Europe/Berlin", "2026-03-28T00:00Z", id="berlin-spring"),
        pytest.param("Europe/Berlin", "2026-10-24T00:00Z", id="berlin-fall"),
        pytest.param("America/New_York", "2026-10-31T12:00Z", id="new-york-fall"),
        pytest.param("Australia/Sydney", "2026-04-04T00:00Z", id="sydney-april"),
    ],
)
@pytest.mark.parametrize("duration", ["45m", "90m"])
def test_occurrence_at_agrees_with_the_calendar(
    recurrence: dict[str, Any], timezone: str, start: str, duration: str
) -> None:
    """Every 5 minutes of a DST weekend, `occurrence_at` is the latest listed start covering it."""
    spec = window(recurrence, timezone=timezone, duration=duration, cutoff="0s")
    begin = at(start)
    calendar = windows.occurrences_between(spec, start=begin, end=begin + timedelta(days=2))
    instants = [begin + timedelta(minutes=5 * step) for step in range(2 * 24 * 12)]

    expected = [
        max((o for o in calendar if o.is_open(now)), key=lambda o: o.start, default=None)
        for now in instants
    ]
    actual = [windows.occurrence_at(spec, now=now) for now in instants]

    assert expected == actual


# --- once, suspend and catch-up ---------------------------------------------------------------

EMERGENCY = window({"once": "2026-12-05T02:00"})  # 01:00Z, open until 05:00Z


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-12-01T00:00Z", (None, "2026-12-05T01:00Z"), id="future"),
        pytest.param("2026-12-05T02:00Z", ("2026-12-05T01:00Z", None), id="open"),
        pytest.param("2026-12-05T05:00Z", (None, None), id="past"),
    ],
)
def test_once(now: str, expected: tuple[str | None, str | None]) -> None:
    """A `once` window opens a single time and has no next occurrence once started."""
    assert expected == (key_at(EMERGENCY, now), next_key(EMERGENCY, now))


@pytest.mark.parametrize(
    "recurrence",
    [
        pytest.param({"cron": "0 2 * * SUN"}, id="cron"),
        pytest.param({"patchTuesday": {}}, id="patch-tuesday"),
        pytest.param({"once": "2026-12-06T02:00"}, id="once"),
    ],
)
def test_suspended_window_never_opens(recurrence: dict[str, Any]) -> None:
    """A suspended window has no open, next, listed or catch-up occurrence."""
    spec = window(recurrence, suspend=True, missedWindow="catch-up")
    now = at("2026-12-06T02:00Z")

    actual = (
        windows.occurrence_at(spec, now=now),
        windows.next_occurrence(spec, after=now - timedelta(days=30)),
        windows.occurrences_between(spec, start=now - timedelta(days=30), end=now),
        windows.catch_up_occurrence(spec, now=now + timedelta(hours=6)),
    )
    expected: tuple[None, None, list[windows.Occurrence], None] = (None, None, [], None)
    assert expected == actual


@pytest.mark.parametrize(
    ("missed_window", "catch_up_within", "now", "expected"),
    [
        pytest.param("catch-up", "1d", "2026-12-06T04:59Z", None, id="still-open"),
        pytest.param("catch-up", "1d", "2026-12-06T05:00Z", "2026-12-06T01:00Z", id="at-close"),
        pytest.param("catch-up", "1d", "2026-12-07T04:59Z", "2026-12-06T01:00Z", id="within-a-day"),
        pytest.param("catch-up", "1d", "2026-12-07T05:00Z", None, id="a-day-later"),
        pytest.param(
            "catch-up", "3d", "2026-12-09T04:00Z", "2026-12-06T01:00Z", id="within-three-days"
        ),
        pytest.param("catch-up", "1d", "2026-12-13T02:00Z", None, id="next-occurrence-open"),
        pytest.param(
            "catch-up",
            "8d",
            "2026-12-13T02:00Z",
            "2026-12-06T01:00Z",
            id="previous-while-next-open",
        ),
        pytest.param("next-window", "1d", "2026-12-06T06:00Z", None, id="next-window-mode"),
    ],
)
def test_catch_up_occurrence(
    missed_window: str, catch_up_within: str, now: str, expected: str | None
) -> None:
    """Catch-up offers the latest closed occurrence until catchUpWithin after its end."""
    spec = window(
        {"cron": "0 2 * * SUN"}, missedWindow=missed_window, catchUpWithin=catch_up_within
    )

    occurrence = windows.catch_up_occurrence(spec, now=at(now))

    assert expected == (None if occurrence is None else occurrence.key)


def test_evaluate_bundles_the_three_questions() -> None:
    """`evaluate` answers open, next and catch-up for one window at one instant."""
    spec = window({"cron": "0 2 * * *"}, missedWindow="catch-up", duration="1h", cutoff="0s")

    state = windows.evaluate(spec, now=at("2026-12-06T01:30Z"))

    expected = ("2026-12-06T01:00Z", "2026-12-07T01:00Z", "2026-12-05T01:00Z")
    occurrences = (state.current, state.upcoming, state.catch_up)
    assert expected == tuple(o.key if o is not None else None for o in occurrences)


# --- listing and keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "limit", "expected"),
    [
        pytest.param(
            "2026-12-01T00:00Z",
            "2026-12-20T00:00Z",
            10,
            ["2026-12-06T01:00Z", "2026-12-13T01:00Z"],
            id="two-sundays",
        ),
        pytest.param(
            "2026-12-06T03:00Z",
            "2026-12-13T01:00Z",
            10,
            ["2026-12-06T01:00Z"],
            id="open-at-start-included-start-at-end-excluded",
        ),
        pytest.param(
            "2026-12-01T00:00Z",
            "2027-12-01T00:00Z",
            3,
            ["2026-12-06T01:00Z", "2026-12-13T01:00Z", "2026-12-20T01:00Z"],
            id="limited",
        ),
        pytest.param("2026-12-20T00:00Z", "2026-12-01T00:00Z", 10, [], id="empty-range"),
    ],
)
def test_occurrences_between(start: str, end: str, limit: int, expected: list[str]) -> None:
    """Listed occurrences are those open at some instant of [start, end), at most `limit`."""
    actual = windows.occurrences_between(
        SUNDAY_0200_BERLIN, start=at(start), end=at(end), limit=limit
    )

    assert expected == [occurrence.key for occurrence in actual]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        pytest.param("2026-12-06T01:00Z", "2026-12-06T01:00Z", id="utc"),
        pytest.param("2026-12-06T02:00+01:00", "2026-12-06T01:00Z", id="offset-normalised"),
        pytest.param("2026-12-06T01:00:30Z", "2026-12-06T01:00:30Z", id="seconds-kept"),
    ],
)
def test_occurrence_key(start: str, expected: str) -> None:
    """Keys are the UTC start to the minute, whatever the offset the instant was given in."""
    assert expected == windows.occurrence_key(datetime.fromisoformat(start))


def test_keys_are_stable_across_queries() -> None:
    """The same occurrence has the same key whether found open, next or listed."""
    spec = window({"patchTuesday": {"offsetDays": 5}}, timezone="America/New_York")
    found_open = windows.occurrence_at(spec, now=at("2026-12-13T08:00Z"))
    found_next = windows.next_occurrence(spec, after=at("2026-12-01T00:00Z"))
    listed = windows.occurrences_between(
        spec, start=at("2026-12-01T00:00Z"), end=at("2026-12-31T00:00Z")
    )

    keys = {o.key for o in (found_open, found_next, *listed) if o is not None}
    assert {"2026-12-13T07:00Z"} == keys


# --- recurrences for ScriptJob and ReportSchedule ---------------------------------------------

WEEKLY_REPORT = ReportScheduleSpec.model_validate({"recurrence": {"cron": "0 6 * * MON"}})
CHROME_UPDATE = ScriptJobSpec.model_validate(
    {
        "script": "update-chrome",
        "targets": {"groups": ["desktops"]},
        "recurrence": {"cron": "0 12 * * WED"},
        "timezone": "Europe/Berlin",
    }
)


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [
        pytest.param("2026-12-07T05:59Z", "2026-12-07T06:00Z", True, id="start-at-now"),
        pytest.param("2026-12-07T06:00Z", "2026-12-07T09:00Z", False, id="start-at-last"),
        pytest.param("2026-11-23T06:00Z", "2026-12-07T09:00Z", True, id="missed-runs"),
        pytest.param("2026-12-07T06:00Z", "2026-12-14T05:59Z", False, id="not-yet"),
        pytest.param("2026-12-07T07:00Z", "2026-12-07T06:00Z", False, id="last-after-now"),
    ],
)
def test_due_since(last: str, now: str, expected: bool) -> None:
    """A scheduled run is due when a start lies in (last, now]."""
    actual = windows.due_since(
        WEEKLY_REPORT.recurrence, WEEKLY_REPORT.timezone, last=at(last), now=at(now)
    )

    assert expected == actual


def test_recurrence_starts_in_script_job_zone() -> None:
    """A ScriptJob's cron runs on its own zone's wall clock, across the October change."""
    actual = windows.recurrence_starts(
        CHROME_UPDATE.recurrence, CHROME_UPDATE.timezone, after=at("2026-10-15T00:00Z"), limit=3
    )

    assert [at("2026-10-21T10:00Z"), at("2026-10-28T11:00Z"), at("2026-11-04T11:00Z")] == actual


@pytest.mark.parametrize(
    ("recurrence", "after", "expected"),
    [
        pytest.param({"cron": "0 6 * * MON"}, "2026-12-07T06:00Z", "2026-12-14T06:00Z", id="cron"),
        pytest.param(
            {"once": "2026-12-24T18:00"}, "2026-12-01T00:00Z", "2026-12-24T18:00Z", id="once-future"
        ),
        pytest.param({"once": "2026-12-24T18:00"}, "2026-12-24T18:00Z", None, id="once-past"),
        pytest.param(
            {"patchTuesday": {"at": "09:00"}},
            "2026-12-01T00:00Z",
            "2026-12-08T09:00Z",
            id="patch-tuesday",
        ),
    ],
)
def test_next_start(recurrence: dict[str, Any], after: str, expected: str | None) -> None:
    """`next_start` is the first start strictly after `after`, or None after a `once`."""
    spec = ReportScheduleSpec.model_validate({"recurrence": recurrence, "timezone": "UTC"})

    actual = windows.next_start(spec.recurrence, spec.timezone, after=at(after))

    assert (None if expected is None else at(expected)) == actual


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda now: windows.occurrence_at(SUNDAY_0200_BERLIN, now=now), id="at"),
        pytest.param(lambda now: windows.next_occurrence(SUNDAY_0200_BERLIN, after=now), id="next"),
        pytest.param(
            lambda now: windows.next_start(WEEKLY_REPORT.recurrence, "UTC", after=now),
            id="next-start",
        ),
    ],
)
def test_naive_instants_are_rejected(call: Any) -> None:
    """A naive datetime is a programming error, reported instead of guessed."""
    with pytest.raises(ValueError, match="must be an aware datetime"):
        call(datetime(2026, 12, 6, 2, 0))  # noqa: DTZ001 - the naive value under test
