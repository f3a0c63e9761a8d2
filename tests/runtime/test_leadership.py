"""Leadership among replicas in one process: two `Leadership`s on one store (both engines) with a
short lease and the real clock, the service's loop gated by it, and `serve` refusing a second
process on SQLite."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.runtime.leadership import Leadership
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.store import Store, leases, open_store
from controller.store import status as status_store
from controller.testing import PolicyRepo

TTL = timedelta(seconds=1)
EVERY = timedelta(seconds=0.2)


def replica(store: Store, name: str, *, exclusive: bool = False) -> Leadership:
    return Leadership(store, ttl=TTL, every=EVERY, holder=name, exclusive=exclusive)


def test_one_leads_and_a_clean_stop_hands_over_at_once(store: Store) -> None:
    """Of two replicas the first to try leads; when it stops, the other leads at its next
    attempt under the next epoch, without waiting for the expiry."""
    first, second = replica(store, "first"), replica(store, "second")
    before = (first.step(), second.step())
    first.stop()
    after = (first.leading, second.step(), second.epoch)
    assert ((True, False), (False, True, 2)) == (before, after)


def test_a_replaced_leader_writes_nothing(store: Store) -> None:
    """A leader that stopped renewing is replaced after the lease expires; its fenced writes
    then fail with LeaseLostError, write nothing, and it knows it no longer leads."""
    first, second = replica(store, "first"), replica(store, "second")
    first.step()
    time.sleep(TTL.total_seconds() + 0.1)  # first is paused: no renewal
    second.step()
    with pytest.raises(leases.LeaseLostError), first.store.write() as conn:
        status_store.set_status(conn, "from-first", {}, now=store_now(store))
    with store.read() as conn:
        written = "from-first" in status_store.get_status(conn)
    assert (False, True, False) == (first.leading, second.leading, written)


def test_a_follower_asks_the_leader_for_a_pass(store: Store) -> None:
    """A follower's request reaches the leader at their next attempts."""
    asked: list[str] = []
    leader, follower = replica(store, "leader"), replica(store, "follower")
    leader.on_wanted = lambda: asked.append("pass")
    leader.step()
    follower.step()
    quiet = list(asked)
    follower.ask_for_pass()
    follower.step()
    time.sleep(0.01)  # the database clock must move on (SQLite: the wall clock)
    leader.step()
    leader.step()
    assert ([], ["pass"]) == (quiet, asked)


def test_an_exclusive_replica_takes_over_a_dead_holders_lease(sqlite_store: Store) -> None:
    """On SQLite, under the serve lock, a new process takes the lease at once from a holder
    killed with -9 (its lease still valid), and its fence ignores the expiry."""
    killed = replica(sqlite_store, "killed")
    killed.step()
    restarted = replica(sqlite_store, "restarted", exclusive=True)
    leads = restarted.step()
    time.sleep(TTL.total_seconds() + 0.1)  # a long write outlasting the lease
    with restarted.store.write() as conn:
        status_store.set_status(conn, "still-mine", {}, now=store_now(sqlite_store))
    assert (True, 2, True) == (leads, restarted.epoch, restarted.leading)


def store_now(store: Store) -> datetime:
    with store.read() as conn:
        return leases.database_now(conn)


def test_only_the_leader_reconciles(
    policy_repo: PolicyRepo, sqlite_store: Store, tmp_path: Path
) -> None:
    """A replica's loop runs no pass while another leads, and runs one as soon as it is
    elected."""
    rival = replica(sqlite_store, "rival")
    rival.step()
    rival.start()  # renews, so that "here" could only take over by a bug
    leadership = replica(sqlite_store, "here")
    reconciler = Reconciler(
        store=leadership.store,
        source=PolicySource(str(policy_repo.path), "main", tmp_path / "state"),
        clock=lambda: store_now(sqlite_store),
    )
    controller = Controller(
        reconciler,
        ServiceOptions(watch_branch=False, notify=False, feeds=False, scheduled_reports=False),
        leadership=leadership,
    )
    controller.start()
    try:
        controller.loop.trigger("test")
        controller.reports_arrived()
        assert controller.loop.wait_idle(10)
        while_following = controller.loop.passes
        rival.stop()  # hands over: "here" is elected at its next attempt and starts a pass
        deadline = time.monotonic() + 10
        while controller.loop.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        role = controller.role()
    finally:
        controller.stop()
    assert (0, 1) == (while_following, min(controller.loop.passes, 1))
    assert {"replica": "here", "leader": True, "epoch": 2} == role


def test_a_controller_refuses_an_unfenced_reconciler(sqlite_store: Store, tmp_path: Path) -> None:
    """A reconciler that would write around the lease is refused when the service is built."""
    reconciler = Reconciler(
        store=sqlite_store,
        source=PolicySource(str(tmp_path), "main", tmp_path / "state"),
        clock=lambda: store_now(sqlite_store),
    )
    with pytest.raises(ValueError, match="fenced store"):
        Controller(reconciler, leadership=replica(sqlite_store, "here"))


def test_a_second_serve_on_sqlite_exits_2_naming_the_first(tmp_path: Path) -> None:
    """`serve` on a SQLite database another `serve` holds exits 2, names that process and
    points to PostgreSQL for several replicas."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(db)
    held = leases.lock_sqlite(store, now=store_now(store))
    try:
        result = CliRunner().invoke(main, ["serve", "--db", db, "--listen", "127.0.0.1:0"])
    finally:
        assert held is not None
        held.release()
        store.close()
    assert 2 == result.exit_code
    assert "is already served by pid" in result.stderr
    assert "use PostgreSQL" in result.stderr


def test_reconcile_command_waits_for_no_running_serve(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """`patchctl reconcile` exits 2 naming the replica that holds the lease; once that one has
    stopped it runs its pass under the lease and releases it, as `status` shows."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    args = ["reconcile", "--repo", str(policy_repo.path), "--db", db, "--state-dir", str(tmp_path)]
    store = open_store(db)
    serving = Leadership(store, holder="serve-1")
    serving.step()
    try:
        refused = CliRunner().invoke(main, args)
    finally:
        serving.stop()
    ran = CliRunner().invoke(main, args)
    shown = CliRunner().invoke(main, ["status", "--db", db, "--state-dir", str(tmp_path)])
    with store.read() as conn:
        lease = leases.read(conn)
        now = leases.database_now(conn)
    store.close()
    assert (2, 0) == (refused.exit_code, ran.exit_code), ran.output
    assert "the reconciler lease is held by serve-1 (epoch 1)" in refused.stderr
    assert lease is not None
    assert (2, False) == (lease.epoch, lease.expires_at > now)
    assert f"leader    {lease.holder} (epoch 2, expired " in shown.output
