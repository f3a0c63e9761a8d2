"""A clock a test moves by hand: the one fake of patchctl's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: The suite's default start: Friday 2026-11-20 09:00 UTC.
DEFAULT_START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class SettableClock:
    """A clock the test moves by hand; pass it wherever patchctl takes `clock: Callable[[],
    datetime]` (the store, the app, the reconciler).

    `now` is an aware datetime; calling the clock returns it unchanged.
    """

    now: datetime = DEFAULT_START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by `timedelta(**delta)` (e.g. `advance(minutes=5)`); the new time."""
        self.now += timedelta(**delta)
        return self.now
