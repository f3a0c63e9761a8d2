"""The `Notifier`: sends events off the reconcile path.

`submit(events)` only puts the events on a bounded queue and returns (a full queue drops and
counts them); it never waits for routing, a network call or a lock held by a sender. A
dispatcher thread routes each event to the channels of the current Notifications
(`controller.notify.routing.route`) and hands it to that channel's `ChannelQueue`; every channel
has its own thread, so a slow or failing channel delays nobody but itself. Every network call
has a timeout, retries back off exponentially, and each channel's state (last success, last
error, failures, queued) goes to `on_status` whenever it changes: `StatusWriter` stores it in
the status table under `notify:<channel-id>`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import structlog

from controller.core.retries import RetryPolicy
from controller.kinds.notifications import Channel, Notification
from controller.notify import channels, routing
from controller.notify.delivery import ChannelQueue, ChannelStatus, RateLimit
from controller.notify.events import Event
from controller.notify.settings import SmtpSettings

log = structlog.get_logger("patchctl.notify")

DEFAULT_QUEUE_SIZE = 10_000
IDLE_WAIT = 1.0  # seconds a channel thread sleeps when nothing is due (woken early on arrival)

SenderFactory = Callable[[Channel], channels.Sender]


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


class _ChannelThread:
    """A channel's queue and the thread that steps it."""

    def __init__(
        self,
        channel_queue: ChannelQueue,
        *,
        clock: Callable[[], datetime],
        on_status: Callable[[ChannelStatus], None] | None,
    ) -> None:
        self.queue = channel_queue
        self.clock = clock
        self.on_status = on_status
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.busy = False
        self._reported: ChannelStatus | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"patchctl-notify-{channel_queue.channel_id}", daemon=True
        )
        self.thread.start()

    def offer(self, events: Sequence[Event]) -> None:
        if self.queue.offer(events):
            self._report()
            self.wake.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.busy = True
            try:
                due = self.queue.step(self.clock())
            finally:
                self.busy = False
            self._report()
            if due is None:
                self.wake.wait(IDLE_WAIT)
            else:
                delay = (due - self.clock()).total_seconds()
                if delay > 0:
                    self.wake.wait(min(delay, IDLE_WAIT))
            self.wake.clear()

    def _report(self) -> None:
        status = self.queue.status()
        if self.on_status is None or status == self._reported:
            return
        self._reported = status
        try:
            self.on_status(status)
        except Exception:  # status is best effort; delivery goes on
            log.warning("notify status not saved", channel=status.channel_id, exc_info=True)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout)


class Notifier:
    """Routes and sends events in the background; `submit` never blocks."""

    def __init__(  # noqa: PLR0913 - keyword-only options, each with a default
        self,
        notifications: Iterable[Notification] = (),
        *,
        sender_factory: SenderFactory | None = None,
        environ: Mapping[str, str] | None = None,
        smtp: SmtpSettings | None = None,
        rate: RateLimit | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = _utc_now,
        on_status: Callable[[ChannelStatus], None] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        timeout: float = channels.DEFAULT_TIMEOUT,
    ) -> None:
        self._notifications = tuple(notifications)
        environment = os.environ if environ is None else environ
        self._sender_factory = sender_factory or (
            lambda channel: channels.make_sender(
                channel, environ=environment, smtp=smtp, timeout=timeout, clock=clock
            )
        )
        self._rate = rate
        self._retry = retry
        self._clock = clock
        self._on_status = on_status
        self._intake: queue.Queue[Event | None] = queue.Queue(maxsize=queue_size)
        self._channels: dict[str, _ChannelThread] = {}
        self._lock = threading.Lock()
        self.dropped = 0  # events refused because the intake queue was full
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="patchctl-notify", daemon=True
        )
        self._dispatcher.start()

    def configure(self, notifications: Iterable[Notification]) -> None:
        """Use a new revision's Notifications for the events submitted from now on."""
        with self._lock:
            self._notifications = tuple(notifications)

    def submit(self, events: Iterable[Event]) -> int:
        """Queue events for delivery without waiting; returns how many were queued."""
        accepted = 0
        for event in events:
            try:
                self._intake.put_nowait(event)
            except queue.Full:
                with self._lock:
                    self.dropped += 1
            else:
                accepted += 1
        return accepted

    def status(self) -> dict[str, ChannelStatus]:
        """Every channel's delivery state, by channel id."""
        with self._lock:
            threads = dict(self._channels)
        return {cid: thread.queue.status() for cid, thread in sorted(threads.items())}

    @property
    def idle(self) -> bool:
        """Nothing waits: no event to route, no message to send or retry."""
        with self._lock:
            threads = list(self._channels.values())
        # unfinished_tasks counts events submitted but not yet handed to their channels
        return self._intake.unfinished_tasks == 0 and all(
            t.queue.idle and not t.busy for t in threads
        )

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for everything queued to be sent (or given up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle:
                return True
            time.sleep(0.01)
        return self.idle

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads (messages still queued are not sent)."""
        with contextlib.suppress(queue.Full):
            self._intake.put_nowait(None)
        self._dispatcher.join(timeout)
        with self._lock:
            threads = list(self._channels.values())
        for thread in threads:
            thread.stop(timeout)

    # --- the dispatcher thread --------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            batch = [self._intake.get(), *self._drain()]
            try:
                self._deliver([e for e in batch if e is not None])
            except Exception:  # one bad event must not stop notifications
                log.exception("notify routing failed")
            finally:
                for _ in batch:
                    self._intake.task_done()
            if None in batch:
                return

    def _drain(self) -> list[Event | None]:
        batch: list[Event | None] = []
        while len(batch) < 1000:
            try:
                batch.append(self._intake.get_nowait())
            except queue.Empty:
                break
        return batch

    def _deliver(self, events: Sequence[Event]) -> None:
        with self._lock:
            notifications = self._notifications
        per_channel: dict[str, tuple[Channel, list[Event]]] = {}
        for delivery in routing.route(events, notifications):
            entry = per_channel.setdefault(delivery.channel_id, (delivery.channel, []))
            entry[1].append(delivery.event)
        for channel_id, (channel, channel_events) in per_channel.items():
            self._channel(channel_id, channel).offer(channel_events)

    def _channel(self, channel_id: str, channel: Channel) -> _ChannelThread:
        with self._lock:
            thread = self._channels.get(channel_id)
            if thread is None:
                channel_queue = ChannelQueue(
                    channel_id,
                    routing.channel_kind(channel),
                    self._sender_factory(channel),
                    rate=self._rate,
                    retry=self._retry,
                )
                thread = _ChannelThread(channel_queue, clock=self._clock, on_status=self._on_status)
                self._channels[channel_id] = thread
            return thread
