"""At-least-once notifications on a real store (SQLite, PostgreSQL) with a real receiver: a
notifier killed with events in flight loses none, and a fresh one re-sends only those."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from notifyhelpers import T0, Request, event, http_receiver, notification

from controller.core.desired import DesiredState
from controller.kinds.notifications import Notification
from controller.notify import ChannelQueue, DeliveryError, Message, Notifier, RetryPolicy
from controller.notify.events import Event
from controller.notify.routing import channel_id
from controller.notify.state import (
    ProgressWriter,
    channel_cursor_key,
    new_events,
    read_events,
    resume,
)
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.runtime.service import Controller, PassContext, ServiceOptions
from controller.store import Store, alerts, leases, status
from controller.store import audit as audit_store
from controller.store.leases import LeaseLostError

SLOW_RETRY = RetryPolicy(max_attempts=5, first_delay=timedelta(minutes=1))  # stays in flight


def hook(url: str) -> Notification:
    return notification(
        "hook", events=("InstallFailed", "ApprovalChanged"), channel={"webhook": {"url": url}}
    )


def add_alerts(store: Store, *names: str) -> None:
    with store.write() as conn:
        for name in names:
            alerts.add_alert(
                conn,
                alerts.NewAlert(
                    kind="InstallFailed",
                    severity="critical",
                    message=f"{name} failed",
                    tenant="acme/retail",
                    device_id=None,
                    dedupe_key=f"InstallFailed:{name}",
                ),
                now=T0,
            )


def start(
    store: Store,
    notifications: list[Notification],
    *,
    retry: RetryPolicy | None = None,
    progress: Store | None = None,
) -> Notifier:
    """What a new leader does: resume from the stored positions, then read and submit."""
    with store.write() as conn:
        settled = resume(conn, [channel_id(n.spec.channel) for n in notifications], now=T0)
        events, upto = read_events(conn, now=T0)
    notifier = Notifier(
        notifications,
        on_progress=ProgressWriter(progress or store),
        settled=settled,
        retry=retry,
    )
    notifier.submit(events, upto=upto)
    return notifier


def stored_position(store: Store, notifications: list[Notification]) -> object:
    key = channel_cursor_key(channel_id(notifications[0].spec.channel))
    with store.read() as conn:
        return status.get_status(conn).get(key, {}).get("value")


def ids(requests: list[Request]) -> list[str]:
    return [e["id"] for r in requests for e in json.loads(r.body)["events"]]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def first_read(store: Store) -> None:
    """A new installation: the first read only places the cursor at the newest rows."""
    add_alerts(store, "history")
    with store.write() as conn:
        assert [] == new_events(conn, now=T0)


def test_a_killed_notifier_loses_nothing_and_repeats_only_what_was_in_flight(
    store: Store,
) -> None:
    """Killed with one event delivered and two in flight, a fresh notifier sends those two."""
    first_read(store)
    add_alerts(store, "web-01", "web-02", "web-03")
    # the first event is delivered; the second gets a 503 and waits a minute for its retry
    with http_receiver(script=[(200, {}), (503, {})]) as receiver:
        notifications = [hook(receiver.url)]
        killed = start(store, notifications, retry=SLOW_RETRY)
        wait_until(lambda: stored_position(store, notifications) == {"alert": 2, "audit": 0})
        assert 2 == len(receiver.wait_for(2))
        killed.close(timeout=2)  # the in-memory queue is dropped unsent, as by kill -9
        assert {"alert": 2, "audit": 0} == stored_position(store, notifications)

        fresh = start(store, notifications, retry=SLOW_RETRY)
        try:
            assert fresh.flush(timeout=10)
            wait_until(lambda: stored_position(store, notifications) == {"alert": 4, "audit": 0})
        finally:
            fresh.close(timeout=2)
    answered = [r for i, r in enumerate(receiver.requests) if i != 1]  # request 1 got the 503
    assert ["alert:2", "alert:3", "alert:3", "alert:4"] == ids(receiver.requests)
    assert ["alert:2", "alert:3", "alert:4"] == ids(answered)
    assert ["alert:2", "alert:3", "alert:3", "alert:4"] == [
        r.headers["X-Patchctl-Event-Id"] for r in receiver.requests
    ]
    assert {"alert": 4, "audit": 0} == stored_position(store, notifications)


def test_without_a_crash_each_event_arrives_exactly_once(store: Store) -> None:
    """Delivered, stopped and started again, the notifier sends nothing a second time."""
    first_read(store)
    add_alerts(store, "web-01", "web-02")
    with store.write() as conn:
        audit_store.add_audit_event(
            conn,
            audit_store.NewAuditEvent(
                actor="Alice", action="ApprovalGranted", object_key="Approval/acme/x", tenant="acme"
            ),
            now=T0,
        )
    with http_receiver() as receiver:
        notifications = [hook(receiver.url)]
        first = start(store, notifications)
        assert first.flush(timeout=10)
        wait_until(lambda: stored_position(store, notifications) == {"alert": 3, "audit": 1})
        first.close(timeout=2)
        second = start(store, notifications)
        try:
            assert second.flush(timeout=10)
        finally:
            second.close(timeout=2)
    assert ["alert:2", "alert:3", "audit:1"] == sorted(ids(receiver.requests))


def test_a_replaced_leader_cannot_move_a_position(store: Store) -> None:
    """Progress written through the fenced store of a leader whose lease was taken is refused,
    so the next leader sends those events again rather than losing them."""
    first_read(store)
    with store.write() as conn:
        leases.acquire(conn, holder="a", ttl=timedelta(seconds=15), now=T0)
        leases.acquire(conn, holder="b", ttl=timedelta(seconds=15), now=T0, force=True)
    replaced = store.fenced(lambda conn: leases.check(conn, holder="a", epoch=1, now=None))
    add_alerts(store, "web-01")
    with http_receiver() as receiver:
        notifications = [hook(receiver.url)]
        with pytest.raises(LeaseLostError):
            ProgressWriter(replaced)(channel_id(notifications[0].spec.channel), {"alert": 9})
        old = start(store, notifications, progress=replaced)  # read while it led
        assert old.flush(timeout=10)
        old.close(timeout=2)
        assert {"alert": 1, "audit": 0} == stored_position(store, notifications)
        new = start(store, notifications)
        try:
            assert new.flush(timeout=10)
            wait_until(lambda: stored_position(store, notifications) == {"alert": 2, "audit": 0})
        finally:
            new.close(timeout=2)
    assert ["alert:2", "alert:2"] == ids(receiver.requests)
    assert {"alert": 2, "audit": 0} == stored_position(store, notifications)


class Script:
    """A sender that succeeds, or fails permanently for the keys it is told."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.sent: list[str] = []

    def send(self, message: Message) -> None:
        self.sent += message.keys
        if set(message.keys) & self.refuse:
            raise DeliveryError("refused", permanent=True)


def stored(number: int) -> Event:
    """An event read from alert row `number`."""
    return dataclasses.replace(event(f"k{number}"), id=f"alert:{number}")


@pytest.mark.parametrize(
    ("steps", "refuse", "expected"),
    [
        (0, set(), {"alert": 4}),
        (1, set(), {"alert": 5}),
        (2, {"k6"}, {"alert": 6}),
        (3, set(), {"alert": 9}),
    ],
    ids=["nothing-sent", "first-sent", "second-given-up", "all-settled"],
)
def test_a_channel_position_stops_before_its_first_unsettled_event(
    steps: int, refuse: set[str], expected: dict[str, int]
) -> None:
    """Events 5-7 offered, rows up to 9 routed: the position is the last row with nothing
    before it still waiting, whether sent or given up on."""
    channel = ChannelQueue("webhook:x", "webhook", Script(refuse))
    channel.offer([stored(5), stored(6), stored(7)])
    channel.advance({"alert": 9})
    for _ in range(steps):
        channel.step(T0)
    assert expected == channel.position()


def test_resume_rewinds_the_read_cursor_to_the_least_settled_channel(store: Store) -> None:
    """Two channels settled at different rows: reading resumes after the lesser one."""
    first_read(store)
    add_alerts(store, "web-01", "web-02", "web-03")
    with store.write() as conn:
        assert 3 == len(new_events(conn, now=T0))
    ProgressWriter(store)("slack:A", {"alert": 3, "audit": 0})
    ProgressWriter(store)("slack:B", {"alert": 2, "audit": 0})
    with store.write() as conn:
        settled = resume(conn, ["slack:A", "slack:B", "slack:new"], now=T0)
        events = new_events(conn, now=T0)
    assert {
        "slack:A": {"alert": 3, "audit": 0},
        "slack:B": {"alert": 2, "audit": 0},
        "slack:new": {"alert": 2, "audit": 0},
    } == settled
    assert ["alert:3", "alert:4"] == [e.event_id for e in events]


def test_a_new_controller_delivers_what_a_killed_one_had_in_flight(
    store: Store, tmp_path: Path
) -> None:
    """Through the service's notify chore: the controller killed mid-delivery loses nothing,
    and the next one sends only the events that were in flight."""
    first_read(store)
    with http_receiver(script=[(200, {}), (503, {"Retry-After": "60"})]) as receiver:
        desired = DesiredState(revision="main@sha1:abc", objects=(hook(receiver.url),))
        notifications = list(desired.notifications)

        def controller() -> Controller:
            source = PolicySource(str(tmp_path / "policy"), "main", tmp_path / "state")
            reconciler = Reconciler(store=store, source=source, clock=lambda: T0)
            return Controller(reconciler, ServiceOptions(watch_branch=False, feeds=False))

        context = PassContext(
            Outcome("applied", desired.revision, desired.revision, T0, 1), desired, T0
        )
        killed = controller()
        killed.run_chores_now(context)  # the first round only places the positions
        add_alerts(store, "web-01", "web-02", "web-03")
        killed.run_chores_now(context)
        wait_until(lambda: stored_position(store, notifications) == {"alert": 2, "audit": 0})
        assert 2 == len(receiver.wait_for(2))
        assert killed.notifier is not None
        killed.notifier.close(timeout=2)  # its queue is gone unsent, as by kill -9

        fresh = controller()
        fresh.run_chores_now(context)
        try:
            assert fresh.notifier is not None
            assert fresh.notifier.flush(timeout=10)
            wait_until(lambda: stored_position(store, notifications) == {"alert": 4, "audit": 0})
        finally:
            fresh.stop(timeout=2)
    assert ["alert:2", "alert:3", "alert:3", "alert:4"] == ids(receiver.requests)
    assert {"alert": 4, "audit": 0} == stored_position(store, notifications)
