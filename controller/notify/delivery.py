"""One channel's delivery queue: de-duplication, rate limit with digests, retries with backoff.

`ChannelQueue` holds no thread and reads no clock: `offer(events)` queues (any thread), and
`step(now)` does at most one send and says when it wants to run again. The `Notifier` drives it
from a thread with the real clock; tests drive it with an invented one.

- **De-duplication**: an event key is delivered once per channel (the last `remember` keys are
  kept; keys that were dropped unsent may come again).
- **Rate limit**: at most `RateLimit.max_messages` sends per `RateLimit.per`. When more events
  wait than the window has room for, the last free send carries all the rest as one digest.
- **Retries**: `controller.errors.decide` says when a failed send is tried again:
  `RetryPolicy.delay(attempt, retry_after=...)` (exponential, never sooner than the receiver's
  `Retry-After`, capped) up to `max_attempts`; a permanent failure (needs-a-human: a 404, a
  missing secret) is not retried.
  Later events wait behind a message being retried, so a channel keeps its order.
- **Position**: `advance(upto)` says the store's rows up to `upto` (`{"alert": id, "audit": id}`)
  were all routed; `position()` is then how far this channel is *settled*: every row at or
  below it that was routed here was delivered or given up on (the Notifier stores it, so a new
  leader resumes there and re-sends only what was still in flight).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from controller import errors
from controller.errors import RetryPolicy
from controller.notify.channels import DeliveryError, Sender
from controller.notify.events import Event
from controller.notify.messages import Message
from controller.redaction import redact_text

STATUS_KEY_PREFIX = "notify:"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `max_messages` messages per `per` on one channel (a digest counts as one)."""

    max_messages: int = 10
    per: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.per <= timedelta(0):
            raise ValueError("a rate limit allows at least one message per positive period")


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """What status shows of a channel (stored under `notify:<channel-id>`)."""

    channel_id: str
    kind: str
    delivered: int = 0  # events delivered (a digest counts each of its events)
    messages: int = 0  # messages sent
    failures: int = 0  # failed attempts since the last success
    dropped: int = 0  # events given up on (attempts exhausted, permanent error, queue full)
    queued: int = 0  # events waiting, including a message being retried
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_attempt: datetime | None = None  # when a failed message is tried again

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "channel": self.channel_id,
            "kind": self.kind,
            "delivered": self.delivered,
            "messages": self.messages,
            "failures": self.failures,
            "dropped": self.dropped,
            "queued": self.queued,
            "lastSuccess": iso(self.last_success),
            "lastError": self.last_error,
            "lastErrorAt": iso(self.last_error_at),
            "nextAttempt": iso(self.next_attempt),
        }


@dataclass(slots=True)
class _Outgoing:
    message: Message
    attempts: int = 0
    retry_at: datetime | None = None


class ChannelQueue:
    """The queue of one channel; `offer` from any thread, `step` from one."""

    def __init__(
        self,
        channel_id: str,
        kind: str,
        sender: Sender,
        *,
        rate: RateLimit | None = None,
        retry: RetryPolicy | None = None,
        max_pending: int = 1000,
        remember: int = 10_000,
    ) -> None:
        self.channel_id = channel_id
        self.sender = sender
        self.rate = rate or RateLimit()
        self.retry = retry or RetryPolicy()
        self.max_pending = max_pending
        self.remember = remember
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()
        self._outbox: deque[_Outgoing] = deque()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._sent: deque[datetime] = deque()
        self._status = ChannelStatus(channel_id, kind)
        self._routed: dict[str, int] = {}  # source -> the highest row id routed
        self._unsettled: dict[str, set[int]] = {}  # source -> queued row ids

    # --- any thread -------------------------------------------------------------------------

    def offer(self, events: Iterable[Event]) -> int:
        """Queue the events not delivered before; returns how many were queued."""
        accepted = 0
        with self._lock:
            dropped = 0
            for event in events:
                if event.key in self._seen:
                    continue
                if len(self._pending) >= self.max_pending:
                    dropped += 1
                    continue
                self._remember(event.key)
                self._pending.append(event)
                if event.position is not None:
                    source, number = event.position
                    self._unsettled.setdefault(source, set()).add(number)
                accepted += 1
            self._status = replace(
                self._status, dropped=self._status.dropped + dropped, queued=self._queued()
            )
        return accepted

    def advance(self, upto: Mapping[str, int]) -> None:
        """Every stored row up to `upto` (source -> row id) was routed (offered here or not)."""
        with self._lock:
            for source, number in upto.items():
                self._routed[source] = max(number, self._routed.get(source, number))

    def position(self) -> dict[str, int]:
        """Per source, the row id up to which everything routed here is delivered or given
        up on (empty before the first `advance`)."""
        with self._lock:
            position = {}
            for source, routed in self._routed.items():
                waiting = self._unsettled.get(source)
                # rows offered before their batch's `advance` may lie above `routed`
                position[source] = min(routed, min(waiting) - 1) if waiting else routed
            return position

    def status(self) -> ChannelStatus:
        with self._lock:
            return self._status

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent."""
        with self._lock:
            return not self._pending and not self._outbox

    # --- the delivering thread --------------------------------------------------------------

    def step(self, now: datetime) -> datetime | None:
        """Send at most one message; returns when to step again (None: when something arrives)."""
        with self._lock:
            wake = self._compose(now)
            if wake is not None or not self._outbox:
                return wake
            head = self._outbox[0]
            if head.retry_at is not None and now < head.retry_at:
                return head.retry_at
            head.attempts += 1
        try:
            self.sender.send(head.message)
        except DeliveryError as exc:
            self._failed(head, exc, now)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop the channel
            self._failed(head, DeliveryError(redact_text(f"{type(exc).__name__}: {exc}")), now)
        else:
            self._succeeded(head, now)
        with self._lock:
            if self._outbox and self._outbox[0].retry_at is not None:
                return self._outbox[0].retry_at
            return now if self._pending or self._outbox else None

    def _compose(self, now: datetime) -> datetime | None:
        """Turn waiting events into messages the rate limit has room for (lock held).

        Returns when to try again if the window is full; None otherwise.
        """
        if self._outbox or not self._pending:
            return None
        while self._sent and self._sent[0] <= now - self.rate.per:
            self._sent.popleft()
        room = self.rate.max_messages - len(self._sent)
        if room <= 0:
            return self._sent[0] + self.rate.per
        waiting = list(self._pending)
        self._pending.clear()
        if len(waiting) <= room:
            self._outbox.extend(_Outgoing(Message((event,))) for event in waiting)
        else:
            singles, rest = waiting[: room - 1], waiting[room - 1 :]
            self._outbox.extend(_Outgoing(Message((event,))) for event in singles)
            self._outbox.append(_Outgoing(Message(tuple(rest), digest=True)))
        return None

    def _settle(self, message: Message) -> None:
        """The message's events are delivered or given up on (lock held)."""
        for event in message.events:
            if event.position is not None:
                source, number = event.position
                self._unsettled.get(source, set()).discard(number)

    def _succeeded(self, outgoing: _Outgoing, now: datetime) -> None:
        with self._lock:
            self._outbox.popleft()
            self._settle(outgoing.message)
            self._sent.append(now)
            status = self._status
            self._status = replace(
                status,
                delivered=status.delivered + len(outgoing.message.events),
                messages=status.messages + 1,
                failures=0,
                queued=self._queued(),
                last_success=now,
                next_attempt=None,
            )

    def _failed(self, outgoing: _Outgoing, error: DeliveryError, now: datetime) -> None:
        with self._lock:
            status = self._status
            verdict = errors.decide(error, attempt=outgoing.attempts, policy=self.retry)
            give_up = verdict.delay is None
            if verdict.delay is None:
                self._outbox.popleft()
                self._settle(outgoing.message)
                outgoing.retry_at = None
                permanent = verdict.kind is errors.Kind.NEEDS_HUMAN
                note = "permanent" if permanent else f"gave up after {outgoing.attempts}"
                message = f"{error} ({note})"
            else:
                outgoing.retry_at = now + verdict.delay
                message = f"{error} (attempt {outgoing.attempts} of {self.retry.max_attempts})"
            self._status = replace(
                status,
                failures=status.failures + 1,
                dropped=status.dropped + (len(outgoing.message.events) if give_up else 0),
                queued=self._queued(),
                last_error=message,
                last_error_at=now,
                next_attempt=outgoing.retry_at,
            )

    def _queued(self) -> int:
        return len(self._pending) + sum(len(o.message.events) for o in self._outbox)

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)


def status_key(channel_id: str) -> str:
    """The status table key of a channel's delivery state."""
    return f"{STATUS_KEY_PREFIX}{channel_id}"
