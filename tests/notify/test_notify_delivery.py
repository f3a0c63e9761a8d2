"""One channel's queue: de-duplication, rate limit with digests, retries with backoff.

The queue is driven step by step with an invented clock; the sender records what it is asked to
send and fails as the test says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from notifyhelpers import T0, event, http_receiver

from controller.notify import ChannelQueue, DeliveryError, Message, RateLimit, RetryPolicy
from controller.notify.channels import SlackSender


@dataclass
class RecordingSender:
    """Records each attempt; raises the next queued error, if any."""

    errors: list[DeliveryError] = field(default_factory=list)
    attempts: list[tuple[datetime, Message]] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [T0])

    def send(self, message: Message) -> None:
        self.attempts.append((self.clock[0], message))
        if self.errors:
            raise self.errors.pop(0)


def drain(channel: ChannelQueue, sender: RecordingSender, *, until: datetime) -> None:
    """Step the queue, jumping the clock to each wake-up it asks for, until `until`."""
    now = sender.clock[0]
    for _ in range(1000):
        sender.clock[0] = now
        wake = channel.step(now)
        if wake is None or wake > until:
            return
        now = max(now, wake)


def test_an_event_key_is_delivered_once() -> None:
    """Offering the same event again, even after it was sent, sends nothing more."""
    sender = RecordingSender()
    channel = ChannelQueue("slack:X", "slack", sender)
    assert (2, 0) == (channel.offer([event("a"), event("a"), event("b")]), 0)
    drain(channel, sender, until=T0)
    assert 0 == channel.offer([event("a")])
    drain(channel, sender, until=T0)
    assert [("a",), ("b",)] == [m.keys for _, m in sender.attempts]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (3, [1, 1, 1]),
        (5, [1, 1, 1, 1, 1]),
        (6, [1, 1, 1, 1, 2]),
        (40, [1, 1, 1, 1, 36]),
    ],
    ids=["under", "at-limit", "one-over", "burst"],
)
def test_the_rate_limit_batches_the_excess_into_one_digest(count: int, expected: list[int]) -> None:
    """At most five messages per minute: the fifth carries everything beyond four."""
    sender = RecordingSender()
    channel = ChannelQueue("slack:X", "slack", sender, rate=RateLimit(5, timedelta(minutes=1)))
    channel.offer([event(f"e{n}") for n in range(count)])
    drain(channel, sender, until=T0)
    assert expected == [len(m.events) for _, m in sender.attempts]
    assert (count > 5) == sender.attempts[-1][1].digest


def test_events_past_a_full_window_wait_for_it_to_free() -> None:
    """Once the minute's sends are used, later events go out as one digest when it frees up."""
    sender = RecordingSender()
    channel = ChannelQueue("slack:X", "slack", sender, rate=RateLimit(2, timedelta(minutes=1)))
    channel.offer([event("a"), event("b")])
    drain(channel, sender, until=T0)
    sender.clock[0] = T0 + timedelta(seconds=10)
    channel.offer([event("c"), event("d"), event("e")])
    assert T0 + timedelta(minutes=1) == channel.step(T0 + timedelta(seconds=10))
    drain(channel, sender, until=T0 + timedelta(minutes=2))
    assert [
        (T0, ("a",), False),
        (T0, ("b",), False),
        (T0 + timedelta(minutes=1), ("c",), False),
        (T0 + timedelta(minutes=1, seconds=0), ("d", "e"), True),
    ] == [(at, m.keys, m.digest) for at, m in sender.attempts]


def test_failures_are_retried_with_exponential_backoff() -> None:
    """2s, 4s, 8s between attempts; the fourth succeeds and the failure count resets."""
    sender = RecordingSender(errors=[DeliveryError("HTTP 503")] * 3)
    retry = RetryPolicy(max_attempts=5, first_delay=timedelta(seconds=2))
    channel = ChannelQueue("webhook:h", "webhook", sender, retry=retry)
    channel.offer([event()])
    drain(channel, sender, until=T0 + timedelta(hours=1))
    assert [T0 + timedelta(seconds=s) for s in (0, 2, 6, 14)] == [at for at, _ in sender.attempts]
    status = channel.status()
    assert (1, 0, 0, T0 + timedelta(seconds=14)) == (
        status.delivered,
        status.failures,
        status.queued,
        status.last_success,
    )
    assert "HTTP 503 (attempt 3 of 5)" == status.last_error


def test_attempts_are_bounded_and_the_failure_stays_visible() -> None:
    """After the last attempt the message is dropped and its error kept in the status."""
    sender = RecordingSender(errors=[DeliveryError("connection refused")] * 10)
    retry = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=1))
    channel = ChannelQueue("webhook:h", "webhook", sender, retry=retry)
    channel.offer([event()])
    drain(channel, sender, until=T0 + timedelta(hours=1))
    status = channel.status()
    assert 3 == len(sender.attempts)
    assert {
        "channel": "webhook:h",
        "kind": "webhook",
        "delivered": 0,
        "messages": 0,
        "failures": 3,
        "dropped": 1,
        "queued": 0,
        "lastSuccess": None,
        "lastError": "connection refused (gave up after 3)",
        "lastErrorAt": (T0 + timedelta(seconds=3)).isoformat(),
        "nextAttempt": None,
    } == status.as_dict()


def test_a_permanent_failure_is_not_retried() -> None:
    """A 404 or a missing secret is given up at once; the next event is sent."""
    sender = RecordingSender(errors=[DeliveryError("HTTP 404", permanent=True)])
    channel = ChannelQueue("webhook:h", "webhook", sender)
    channel.offer([event("a"), event("b")])
    drain(channel, sender, until=T0 + timedelta(hours=1))
    assert [("a",), ("b",)] == [m.keys for _, m in sender.attempts]
    assert (1, 1, "HTTP 404 (permanent)") == (
        channel.status().dropped,
        channel.status().delivered,
        channel.status().last_error,
    )


def test_events_wait_behind_a_retry_and_keep_their_order() -> None:
    """Later events queue behind a message being retried; `queued` counts them."""
    sender = RecordingSender(errors=[DeliveryError("timeout")])
    channel = ChannelQueue("slack:X", "slack", sender)
    channel.offer([event("a")])
    assert T0 + timedelta(seconds=2) == channel.step(T0)
    channel.offer([event("b")])
    assert (2, T0 + timedelta(seconds=2)) == (
        channel.status().queued,
        channel.status().next_attempt,
    )
    drain(channel, sender, until=T0 + timedelta(minutes=1))
    assert [("a",), ("a",), ("b",)] == [m.keys for _, m in sender.attempts]


def test_a_full_queue_drops_and_counts() -> None:
    """Past `max_pending` waiting events, new ones are dropped and counted."""
    channel = ChannelQueue("slack:X", "slack", RecordingSender(), max_pending=2)
    assert 2 == channel.offer([event("a"), event("b"), event("c")])
    assert (1, 2) == (channel.status().dropped, channel.status().queued)


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 2), (2, 4), (3, 8), (8, 256), (9, 300), (20, 300)],
    ids=["first", "second", "third", "eighth", "capped", "far"],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, seconds: int) -> None:
    """The delay after attempt n is 2s times 2^(n-1), never more than five minutes."""
    assert timedelta(seconds=seconds) == RetryPolicy().delay(attempt)


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [(20, 20), (1, 2), (7200, 3600)],
    ids=["honoured", "backoff-longer", "capped"],
)
def test_a_retry_waits_as_long_as_the_receiver_asks(retry_after: int, waited: int) -> None:
    """Retry-After sets the next attempt (never sooner than the backoff, at most the cap)."""
    asked = timedelta(seconds=retry_after)
    sender = RecordingSender(errors=[DeliveryError("HTTP 429", retry_after=asked)])
    channel = ChannelQueue("slack:X", "slack", sender)
    channel.offer([event()])
    drain(channel, sender, until=T0 + timedelta(hours=1))
    assert [T0, T0 + timedelta(seconds=waited)] == [at for at, _ in sender.attempts]


def test_slack_throttled_is_sent_again_after_the_wait_it_asked_for() -> None:
    """A real Slack-style endpoint answers 429 Retry-After: 20; the queue asks to run again at
    20s, not 2s, and the second attempt delivers."""
    with http_receiver(script=[(429, {"Retry-After": "20"})]) as receiver:
        sender = SlackSender(
            url_env="SLACK_URL", environ={"SLACK_URL": receiver.url}, clock=lambda: T0
        )
        channel = ChannelQueue("slack:SLACK_URL", "slack", sender)
        channel.offer([event()])
        wake = channel.step(T0)
        assert wake is not None
        channel.step(wake)
    status = channel.status()
    assert (T0 + timedelta(seconds=20), 2, 1) == (wake, len(receiver.requests), status.delivered)
