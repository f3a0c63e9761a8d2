"""The `Notifier`: sends events off the reconcile path.

`submit(events)` only puts the events on a bounded queue and returns (a full queue drops and
counts them); it never waits for routing, a network call or a lock held by a sender. A
dispatcher thread routes each event to the channels of the current Notifications
(`controller.notify.routing.route`) and hands it to that channel's `ChannelQueue`; every channel
has its own thread, so a slow or failing channel delays nobody but itself. Every network call
has a timeout, retries back off exponentially, and each channel's state (last success, last
error, failures, queued) goes to `on_status` whenever it changes: `StatusWriter` stores it in
the status table under `notify:<channel-id>`.

Delivery is at least once across crashes and leader changes: `submit(events, upto=...)` says
which stored rows the events were read up to, and each channel's settled position (see
`ChannelQueue.position`) goes to `on_progress` after a send or a give-up, never on reading:
`controller.notify.state` stores it under `notify-cursor:<channel-id>`, and a new Notifier is
given those positions (`settled`) so that it skips what each channel already has.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
Progress = Callable[[str, dict[str, int]], None]  # (channel id, settled position)


@dataclass(frozen=True, slots=True)
class _Routed:
    """On the intake queue after the events read up to `upto` (source -> row id)."""

    upto: Mapping[str, int]


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
        on_progress: Progress | None = None,
    ) -> None:
        self.queue = channel_queue
        self.clock = clock
        self.on_status = on_status
        self.on_progress = on_progress
        self._stored: dict[str, int] = {}
        self._progress_lock = threading.Lock()  # one writer at a time: a position never goes back
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
        self._progress()
        status = self.queue.status()
        if self.on_status is None or status == self._reported:
            return
        self._reported = status
        try:
            self.on_status(status)
        except Exception:  # status is best effort; delivery goes on
            log.warning("notify status not saved", channel=status.channel_id, exc_info=True)

    def _progress(self) -> None:
        """Store the channel's settled position when it moved (after sends, never on intake)."""
        if self.on_progress is None:
            return
        with self._progress_lock:
            position = self.queue.position()
            if not position or position == self._stored:
                return
            # Tried once per new position: a failure (the store down, a lease lost) only leaves
            # the stored position behind, which costs duplicates after a crash, never losses;
            # retrying the same one every step would only repeat the warning.
            self._stored = position
            try:
                self.on_progress(self.queue.channel_id, position)
            except Exception as exc:  # noqa: BLE001 - delivery goes on; the next position retries
                log.warning(
                    "notify position not saved", channel=self.queue.channel_id, error=str(exc)
                )

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
        on_progress: Progress | None = None,
        settled: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """`settled`: per channel id, the stored position (source -> row id) up to which it has
        everything; events at or below it are not offered to it again."""
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
        self._on_progress = on_progress
        self._settled = {cid: dict(position) for cid, position in (settled or {}).items()}
        self._intake: queue.Queue[Event | _Routed | None] = queue.Queue(maxsize=queue_size)
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

    def submit(self, events: Iterable[Event], *, upto: Mapping[str, int] | None = None) -> int:
        """Queue events for delivery without waiting; returns how many were queued.

        `upto`: the stored rows (source -> row id) the events were read up to; once they are
        routed, channels report their settled positions against it.
        """
        accepted = 0
        for event in events:
            try:
                self._intake.put_nowait(event)
            except queue.Full:
                with self._lock:
                    self.dropped += 1
            else:
                accepted += 1
        if upto is not None:
            with contextlib.suppress(queue.Full):  # the next round's mark covers these rows
                self._intake.put_nowait(_Routed(dict(upto)))
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
                self._deliver([e for e in batch if isinstance(e, Event)])
                marks = [e for e in batch if isinstance(e, _Routed)]
                if marks:
                    self._advance(marks[-1].upto)
            except Exception:  # one bad event must not stop notifications
                log.exception("notify routing failed")
            finally:
                for _ in batch:
                    self._intake.task_done()
            if None in batch:
                return

    def _drain(self) -> list[Event | _Routed | None]:
        batch: list[Event | _Routed | None] = []
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
            if self._has(delivery.channel_id, delivery.event):
                continue
            entry = per_channel.setdefault(delivery.channel_id, (delivery.channel, []))
            entry[1].append(delivery.event)
        for channel_id, (channel, channel_events) in per_channel.items():
            self._channel(channel_id, channel).offer(channel_events)

    def _has(self, channel_id: str, event: Event) -> bool:
        """Whether the channel's stored position says it has the event (sent before a restart)."""
        if event.position is None:
            return False
        source, number = event.position
        return number <= self._settled.get(channel_id, {}).get(source, -1)

    def _advance(self, upto: Mapping[str, int]) -> None:
        """Rows up to `upto` are routed: every configured channel (a thread each, so that one
        receiving nothing still moves its position) may count them as settled."""
        with self._lock:
            notifications = self._notifications
        for notification in notifications:
            channel = notification.spec.channel
            self._channel(routing.channel_id(channel), channel).queue.advance(upto)

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
                # what the channel had before a restart counts as routed: its position never
                # goes below the stored one, even while the read cursor catches up
                channel_queue.advance(self._settled.get(channel_id, {}))
                thread = _ChannelThread(
                    channel_queue,
                    clock=self._clock,
                    on_status=self._on_status,
                    on_progress=self._on_progress,
                )
                self._channels[channel_id] = thread
            return thread
