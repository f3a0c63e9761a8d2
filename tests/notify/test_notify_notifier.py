"""The Notifier with real threads and real local receivers: `submit` never waits for a channel."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from notifyhelpers import closed_port, event, http_receiver, notification

from controller.kinds.notifications import Notification
from controller.notify import Notifier, RetryPolicy, verify_signature
from controller.notify.delivery import ChannelStatus

SECRET = "s3cret"  # noqa: S105 - a test secret
FAST_RETRY = RetryPolicy(max_attempts=3, first_delay=timedelta(milliseconds=20))


def webhook(name: str, url: str, *, tenant: str | None = "acme") -> Notification:
    return notification(
        name,
        tenant=tenant,
        channel={"webhook": {"url": url, "secretEnv": "HOOK_SECRET"}},
    )


@pytest.fixture
def notifiers() -> Iterator[list[Notifier]]:
    """Notifiers made by a test, closed after it."""
    made: list[Notifier] = []
    yield made
    for notifier in made:
        notifier.close(timeout=2)


def test_submitted_events_reach_the_webhook_signed(notifiers: list[Notifier]) -> None:
    """An event submitted is routed, signed and delivered by the background thread."""
    with http_receiver() as receiver:
        notifier = Notifier(
            [webhook("hook", receiver.url)], environ={"HOOK_SECRET": SECRET}, retry=FAST_RETRY
        )
        notifiers.append(notifier)
        assert 1 == notifier.submit([event("k1")])
        assert notifier.flush(timeout=10)
        [request] = receiver.requests
    assert verify_signature(SECRET.encode(), request.body, request.headers["X-Patchctl-Signature"])
    assert ["k1"] == [e["key"] for e in json.loads(request.body)["events"]]


@pytest.mark.parametrize(
    "failure",
    ["connection-refused", "http-500", "slow"],
)
def test_a_failing_channel_never_blocks_submit(notifiers: list[Notifier], failure: str) -> None:
    """Submitting to a dead, erroring or hanging endpoint returns at once; the error is kept."""
    with http_receiver(status=500) as erroring, http_receiver(delay=1.5) as slow:
        url = {
            "connection-refused": f"http://127.0.0.1:{closed_port()}/hook",
            "http-500": erroring.url,
            "slow": slow.url,
        }[failure]
        notifier = Notifier(
            [webhook("bad", url)], environ={"HOOK_SECRET": SECRET}, retry=FAST_RETRY, timeout=0.3
        )
        notifiers.append(notifier)
        started = time.perf_counter()
        accepted = sum(notifier.submit([event(f"k{n}")]) for n in range(200))
        elapsed = time.perf_counter() - started
        assert (200, True) == (accepted, elapsed < 0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _failed(notifier):
            time.sleep(0.01)
        [status] = notifier.status().values()
    assert status.failures >= 1
    assert status.last_error is not None


def _failed(notifier: Notifier) -> bool:
    return any(s.failures for s in notifier.status().values())


def test_a_failing_channel_does_not_delay_a_healthy_one(notifiers: list[Notifier]) -> None:
    """Channels have their own threads: the good one delivers while the bad one hangs."""
    with http_receiver(delay=2.0) as slow, http_receiver() as good:
        notifier = Notifier(
            [webhook("bad", slow.url), webhook("good", good.url)],
            environ={"HOOK_SECRET": SECRET},
            retry=FAST_RETRY,
            timeout=5,
        )
        notifiers.append(notifier)
        started = time.perf_counter()
        notifier.submit([event("k1")])
        assert ["k1"] == [json.loads(r.body)["events"][0]["key"] for r in good.wait_for(1, 1.5)]
        assert time.perf_counter() - started < 1.5


def test_a_full_intake_queue_drops_instead_of_waiting(notifiers: list[Notifier]) -> None:
    """With the intake full, `submit` counts the excess as dropped and returns."""
    notifier = Notifier([], queue_size=1)
    notifiers.append(notifier)
    notifier.close(timeout=2)  # the dispatcher no longer drains: the queue stays full
    accepted = notifier.submit([event("a"), event("b"), event("c")])
    assert accepted + notifier.dropped == 3
    assert notifier.dropped >= 2


def test_channel_states_are_reported_as_they_change(notifiers: list[Notifier]) -> None:
    """`on_status` receives the channel's state after each change, ending delivered."""
    seen: list[ChannelStatus] = []
    with http_receiver() as receiver:
        notifier = Notifier(
            [webhook("hook", receiver.url)],
            environ={"HOOK_SECRET": SECRET},
            on_status=seen.append,
        )
        notifiers.append(notifier)
        notifier.submit([event("k1"), event("k2")])
        assert notifier.flush(timeout=10)
        time.sleep(0.05)
    assert (2, 0, 0) == (seen[-1].delivered, seen[-1].queued, seen[-1].failures)
    assert any(s.queued for s in seen)


def test_configure_switches_the_notifications_in_use(notifiers: list[Notifier]) -> None:
    """Events submitted after `configure` follow the new revision's Notifications."""
    with http_receiver() as first, http_receiver() as second:
        notifier = Notifier([webhook("one", first.url)], environ={"HOOK_SECRET": SECRET})
        notifiers.append(notifier)
        notifier.submit([event("k1")])
        assert notifier.flush(timeout=10)
        notifier.configure([webhook("two", second.url)])
        notifier.submit([event("k2")])
        assert notifier.flush(timeout=10)
        keys = (
            [json.loads(r.body)["events"][0]["key"] for r in first.requests],
            [json.loads(r.body)["events"][0]["key"] for r in second.requests],
        )
    assert (["k1"], ["k2"]) == keys
