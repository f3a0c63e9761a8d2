"""The patch-window calendar: when a PatchWindow (or any `Recurrence`) starts, is open and closes.

Purely computational, no side effects: every function takes the instant it reasons about (`now`,
`after`, ...) as an aware datetime and returns aware UTC datetimes. Nothing here reads the clock,
does I/O or logs.

Semantics (see docs/windows.md):
- Recurrences are evaluated on the local wall clock of the IANA `timezone`. A local start time that
  does not exist (spring forward) starts at the first valid instant after the gap (02:30 on the last
  Sunday of March in Europe/Berlin starts at 03:00 CEST); an ambiguous one (fall back) means its
  first occurrence (fold=0), and never fires twice. This holds for every cron expression, including
  `*/15 * * * *`, unlike Debian cron, which runs such expressions on elapsed time.
- `duration`, `cutoff` and `catchUpWithin` are absolute elapsed time: a 4h window across a DST
  change is open for 4 real hours, whatever the wall clock says.
- Occurrences are half-open: open on `[start, end)`, accepting new installs on `[start, cutoff_at)`,
  catching up on `[end, end + catchUpWithin)`.
- Occurrences may overlap (`0 * * * *` with `duration: 3h`); the occurrence open at an instant is
  then the latest started one, which is also the last to close.

Cost: each query is a handful of cron steps, whatever the duration (the latest start before an
instant is found by stepping backwards once, not by scanning), so the planner computes a window's
`evaluate` once per reconcile and shares it between every targeted device.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cronsim import CronSim

from controller.kinds.windows import MissedWindow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from controller.kinds.windows import PatchTuesday, PatchWindowSpec, Recurrence

_ONE_SECOND = timedelta(seconds=1)
_TUESDAY = 1  # date.weekday()


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One opening of a window, in UTC; built by this module's functions.

    `key` names the occurrence in deterministic job ids: the start instant in UTC
    (`2026-12-06T01:00Z`), unique within a window and stable across revisions.
    """

    start: datetime
    end: datetime
    cutoff_at: datetime
    key: str

    @classmethod
    def starting(cls, start: datetime, *, duration: timedelta, cutoff: timedelta) -> Occurrence:
        """The occurrence that starts at `start` (aware) and lasts `duration` real time."""
        start = _as_utc(start, "start")
        end = start + duration
        return cls(start=start, end=end, cutoff_at=end - cutoff, key=occurrence_key(start))

    def is_open(self, now: datetime) -> bool:
        """Whether the occurrence is open at `now`: `start <= now < end`."""
        return self.start <= now < self.end

    def accepts_new_installs(self, now: datetime) -> bool:
        """Whether installs may still start at `now`: open and before the cutoff."""
        return self.start <= now < self.cutoff_at


@dataclass(frozen=True, slots=True)
class WindowState:
    """Everything the planner asks about one window at one instant, computed once."""

    current: Occurrence | None
    """The occurrence open at `now`, if any."""
    upcoming: Occurrence | None
    """The next occurrence starting after `now`."""
    catch_up: Occurrence | None
    """The closed occurrence an offline device may still catch up on (`missedWindow: catch-up`)."""


def occurrence_key(start: datetime) -> str:
    """The stable name of an occurrence starting at `start`: UTC, minutes (seconds if any)."""
    start = _as_utc(start, "start")
    if start.second or start.microsecond:
        return start.strftime("%Y-%m-%dT%H:%M:%SZ")
    return start.strftime("%Y-%m-%dT%H:%MZ")


def patch_tuesday(year: int, month: int) -> date:
    """Microsoft's Patch Tuesday: the second Tuesday of the month."""
    first = date(year, month, 1)
    first_tuesday = 1 + (_TUESDAY - first.weekday()) % 7
    return first.replace(day=first_tuesday + 7)


# --- windows ------------------------------------------------------------------------------------


def is_open(recurrence: Recurrence, timezone: str, duration: timedelta, *, now: datetime) -> bool:
    """Whether an occurrence of `recurrence` (in `timezone`) that lasts `duration` is open at
    `now`: the schedules of other kinds (ApprovalProposal) read like a window's."""
    now = _as_utc(now, "now")
    return _latest_start(recurrence, _zone(timezone), until=now, after=now - duration) is not None


def evaluate(spec: PatchWindowSpec, *, now: datetime) -> WindowState:
    """The open, next and catch-up occurrences of a window at `now`."""
    return WindowState(
        current=occurrence_at(spec, now=now),
        upcoming=next_occurrence(spec, after=now),
        catch_up=catch_up_occurrence(spec, now=now),
    )


def occurrence_at(spec: PatchWindowSpec, *, now: datetime) -> Occurrence | None:
    """The occurrence open at `now`, or None when the window is closed or suspended."""
    now = _as_utc(now, "now")
    if spec.suspend:
        return None
    start = _latest_start(
        spec.recurrence, _zone(spec.timezone), until=now, after=now - spec.duration
    )
    return None if start is None else _occurrence(spec, start)


def next_occurrence(spec: PatchWindowSpec, *, after: datetime) -> Occurrence | None:
    """The first occurrence starting strictly after `after` (None: suspended, or a past `once`)."""
    after = _as_utc(after, "after")
    if spec.suspend:
        return None
    start = next(_starts_after(spec.recurrence, _zone(spec.timezone), after=after), None)
    return None if start is None else _occurrence(spec, start)


def occurrences_between(
    spec: PatchWindowSpec, *, start: datetime, end: datetime, limit: int = 1000
) -> list[Occurrence]:
    """Occurrences open at some instant of `[start, end)`, oldest first, at most `limit` of them."""
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    if spec.suspend or end <= start:
        return []
    # An occurrence overlaps [start, end) when it starts in (start - duration, end).
    starts = _starts_after(spec.recurrence, _zone(spec.timezone), after=start - spec.duration)
    in_range = itertools.takewhile(lambda instant: instant < end, starts)
    return [_occurrence(spec, instant) for instant in itertools.islice(in_range, limit)]


def catch_up_occurrence(spec: PatchWindowSpec, *, now: datetime) -> Occurrence | None:
    """The closed occurrence a device that missed it may still install in, at `now`.

    Only for `missedWindow: catch-up`: the most recent occurrence with `end <= now <
    end + catchUpWithin`. Whether the device did miss it is the planner's call; an occurrence
    open at `now` takes precedence over a catch-up.
    """
    now = _as_utc(now, "now")
    if spec.suspend or spec.missed_window is not MissedWindow.CATCH_UP:
        return None
    closed_by = now - spec.duration  # an occurrence starting at or before this has ended
    start = _latest_start(
        spec.recurrence,
        _zone(spec.timezone),
        until=closed_by,
        after=closed_by - spec.catch_up_within,
    )
    return None if start is None else _occurrence(spec, start)


def _occurrence(spec: PatchWindowSpec, start: datetime) -> Occurrence:
    return Occurrence.starting(start, duration=spec.duration, cutoff=spec.cutoff)


# --- recurrences (also ScriptJob and ReportSchedule) --------------------------------------------


def recurrence_starts(
    recurrence: Recurrence, timezone: str, *, after: datetime, limit: int
) -> list[datetime]:
    """The next `limit` start instants (UTC) strictly after `after`, oldest first."""
    starts = _starts_after(recurrence, _zone(timezone), after=_as_utc(after, "after"))
    return list(itertools.islice(starts, limit))


def next_start(recurrence: Recurrence, timezone: str, *, after: datetime) -> datetime | None:
    """The first start instant (UTC) strictly after `after`; None when there is none."""
    return next(_starts_after(recurrence, _zone(timezone), after=_as_utc(after, "after")), None)


def due_since(recurrence: Recurrence, timezone: str, *, last: datetime, now: datetime) -> bool:
    """Whether a scheduled run is due: a start lies in `(last, now]`.

    `last` is the previous run, or when the schedule was first seen for one that never ran
    (a new schedule waits for its first start instead of running at once).
    """
    upcoming = next_start(recurrence, timezone, after=last)
    return upcoming is not None and upcoming <= _as_utc(now, "now")


# --- the calendar underneath --------------------------------------------------------------------


def _starts_after(recurrence: Recurrence, zone: ZoneInfo, *, after: datetime) -> Iterator[datetime]:
    """Start instants (UTC) strictly after `after`, strictly increasing; unbounded for cron."""
    if recurrence.cron is not None:
        local = _cron_local_times(recurrence.cron, _wall_clock(after, zone), reverse=False)
    elif recurrence.patch_tuesday is not None:
        local = _patch_tuesday_local_times(recurrence.patch_tuesday, _wall_clock(after, zone))
    elif recurrence.once is not None:
        local = iter((recurrence.once,))
    else:  # pragma: no cover - the model guarantees exactly one
        return
    # Wall-clock times map to instants monotonically, but a gap folds several local times onto
    # one instant, and an ambiguous `after` (fold=1) sorts before local times already passed.
    previous = after
    for wall in local:
        instant = _instant(wall, zone)
        if instant > previous:
            yield instant
            previous = instant


def _latest_start(
    recurrence: Recurrence, zone: ZoneInfo, *, until: datetime, after: datetime
) -> datetime | None:
    """The latest start instant in `(after, until]`, or None."""
    best = _latest_start_hint(recurrence, zone, until=until)
    if best is None or best <= after:
        best, cursor = None, after
    else:
        cursor = best
    # The hint is exact except when `until` is the second pass of an ambiguous hour: then a
    # start in the first pass sorts later on the wall clock; a step or two forward finds it.
    for start in _starts_after(recurrence, zone, after=cursor):
        if start > until:
            break
        best = start
    return best


def _latest_start_hint(
    recurrence: Recurrence, zone: ZoneInfo, *, until: datetime
) -> datetime | None:
    """A start at or before `until`: the latest, or one ambiguous hour's starts before it."""
    wall = _wall_clock(until, zone)
    if recurrence.cron is not None:
        # cronsim iterates backwards from one second after `wall`, so `wall` itself counts.
        local = next(_cron_local_times(recurrence.cron, wall + _ONE_SECOND, reverse=True), None)
    elif recurrence.patch_tuesday is not None:
        local = _latest_patch_tuesday_local_time(recurrence.patch_tuesday, wall)
    else:
        local = recurrence.once
    if local is None:
        return None
    instant = _instant(local, zone)
    return instant if instant <= until else None


def _cron_local_times(expression: str, wall: datetime, *, reverse: bool) -> Iterator[datetime]:
    """Naive local times matching `expression`, strictly after (or before) `wall`.

    cronsim is given naive times on purpose: it then does plain calendar arithmetic, and this
    module applies one DST rule to cron, patchTuesday and once alike (see `_instant`).
    """
    yield from CronSim(expression, wall.replace(microsecond=0), reverse=reverse)


def _patch_tuesday_local_times(rule: PatchTuesday, wall: datetime) -> Iterator[datetime]:
    """Naive local start times of a patchTuesday rule, from a month or two before `wall` on."""
    # A start (up to day 14 + 26) can fall in the next month, so begin two months back.
    year, month = _add_months(wall.year, wall.month, -2)
    while True:
        yield _patch_tuesday_local_time(rule, year, month)
        year, month = _add_months(year, month, 1)


def _latest_patch_tuesday_local_time(rule: PatchTuesday, wall: datetime) -> datetime:
    """The latest naive local start time at or before `wall`."""
    year, month = wall.year, wall.month
    while (local := _patch_tuesday_local_time(rule, year, month)) > wall:
        year, month = _add_months(year, month, -1)
    return local


def _patch_tuesday_local_time(rule: PatchTuesday, year: int, month: int) -> datetime:
    day = patch_tuesday(year, month) + timedelta(days=rule.offset_days)
    return datetime.combine(day, rule.start_time())


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive local time in `zone`.

    Ambiguous (fall back): the first occurrence (fold=0). Non-existent (spring forward): the
    first valid instant after the gap, i.e. the transition itself (02:30 -> 03:00 CEST).
    """
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the time with the offset before the transition (an instant after
    # it) and fold=1 with the offset after (an instant before it): bisect between the two.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    offset_after = instant.astimezone(zone).utcoffset()
    low, high = 0, int((instant - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return before + timedelta(seconds=high)


def _wall_clock(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local time of an instant (fold kept, so the second pass of an hour stays so)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # ZoneInfo caches instances: cheap after the first call


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)
