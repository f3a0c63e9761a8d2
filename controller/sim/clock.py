"""Clocks for simulated agents: time is a parameter, so tests and the demo decide how fast it runs.

`ScaledClock` runs simulated time `speed` times faster than the wall clock (the demo's
accelerated fleet); `ManualClock` moves only when a test advances it, waking the sleepers whose
time has come, in order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What an agent needs of time: read it, and wait for some of it to pass. `stamp` is the
    time it writes into what it reports (a scan's `scannedAt`, boot and install times): the
    service's time, which the service checks (a scan dated later than its own clock by more
    than 5 minutes is refused, `core.clocks.MAX_CLOCK_SKEW`)."""

    def now(self) -> datetime: ...

    def stamp(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class ScaledClock:
    """Simulated time = `start` + `speed` x wall time elapsed since construction.

    `wall_stamps`: what the agents report is dated by the wall clock, not by simulated time:
    for agents paced faster than a service that keeps real time (`patchctl simulate --speed`
    against `patchctl serve`), whose clock simulated time would outrun. Off, reports carry
    simulated time, for a service that runs on this very clock (the demo)."""

    def __init__(
        self, *, speed: float = 1.0, start: datetime | None = None, wall_stamps: bool = False
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start = start or datetime.now(tz=UTC)
        self.wall_stamps = wall_stamps
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self.speed
        return self.start + timedelta(seconds=elapsed)

    def stamp(self) -> datetime:
        return datetime.now(tz=UTC) if self.wall_stamps else self.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """Time that moves only on `advance`; `sleep` waits until the clock has passed its deadline."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def stamp(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        await future

    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forwards, waking sleepers in deadline order (each gets to run)."""
        target = self._now + timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake)
            if not future.done():
                future.set_result(None)
            await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)
