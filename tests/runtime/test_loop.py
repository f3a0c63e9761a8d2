"""The reconcile loop: triggers coalesce, reports are deferred (never dropped) by the debounce, a
moved branch is seen, stop() returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.runtime.loop import BranchWatcher, ReconcileLoop
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.store import Store, open_store
from controller.testing import PolicyRepo

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def make_loop(repo: PolicyRepo, store: Store, tmp_path: Path) -> ReconcileLoop:
    reconciler = Reconciler(
        store=store, source=PolicySource(str(repo.path), "main", tmp_path / "s"), clock=lambda: NOW
    )
    return ReconcileLoop(reconciler, interval=timedelta(hours=1), jitter=0.0)


def test_triggers_coalesce_into_few_passes(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """A burst of triggers while a pass runs makes at most one more pass."""
    loop = make_loop(example_repo, store, tmp_path)
    loop.start()
    try:
        assert loop.wait_idle(30)
        before = loop.passes
        for _ in range(50):
            loop.trigger("reports")
        time.sleep(0.2)
        assert loop.wait_idle(30)
        assert 1 <= loop.passes - before <= 2
    finally:
        loop.stop()


def test_a_commit_is_seen_and_applied(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """A new commit on the branch triggers a pass that applies the new revision."""
    loop = make_loop(example_repo, store, tmp_path)
    watcher = BranchWatcher(
        loop,
        repo=str(example_repo.path),
        branch="main",
        state_dir=tmp_path / "s",
        every=timedelta(seconds=5),
    )
    loop.start()
    watcher.start()
    try:
        assert loop.wait_idle(30)
        example_repo.write(
            "policies/approvals/extra.yaml",
            "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: extra, tenant: acme}\nspec: {patches: [KB1], targets: {groups: [all-windows]}, reason: test}\n",
        )
        sha = example_repo.commit("approve KB1")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            outcome = loop.last_outcome
            if outcome is not None and outcome.applied_revision == f"main@sha1:{sha}":
                break
            time.sleep(0.05)
        assert loop.last_outcome is not None
        assert f"main@sha1:{sha}" == loop.last_outcome.applied_revision
    finally:
        watcher.stop()
        loop.stop()


def test_the_last_plan_is_kept_until_the_next_pass_starts(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Between passes the last outcome has its plan; once the next pass starts the loop holds
    the outcome without it (a full pass would hold two fleets' plans), and then the new one."""
    loop = make_loop(example_repo, store, tmp_path)
    seen_during: list[Outcome | None] = []
    reconcile = loop.reconciler.reconcile

    def watched() -> Outcome:
        seen_during.append(loop.last_outcome)
        return reconcile()

    loop.reconciler.reconcile = watched  # type: ignore[method-assign]
    loop.start()
    try:
        assert loop.wait_idle(30)
        first = loop.last_outcome
        assert first is not None
        assert first.plan is not None
        loop.trigger("interval")
        time.sleep(0.2)
        assert loop.wait_idle(30)
        assert [None, first.as_dict()] == [o and o.as_dict() for o in seen_during]
        assert seen_during[1] is not None
        assert seen_during[1].plan is None
        assert loop.last_outcome is not None
        assert loop.last_outcome.plan is not None
        assert loop.last_outcome is not first
    finally:
        loop.stop()


def test_stop_returns_promptly(example_repo: PolicyRepo, store: Store, tmp_path: Path) -> None:
    """stop() ends the loop thread without waiting for the interval."""
    loop = make_loop(example_repo, store, tmp_path)
    loop.start()
    loop.wait_idle(30)
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 5


class FakeMonotonic:
    """The loop's monotonic clock, moved by the test: debounce decisions never depend on speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Passes:
    """Counts the loop's completed passes, with their triggers, and lets a test wait for one."""

    loop: ReconcileLoop
    triggers: list[tuple[str, ...]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def record(self, _outcome: Outcome) -> None:
        with self.changed:
            self.triggers.append(self.loop.last_triggers)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, ...]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.triggers) >= count, timeout=30)
            return list(self.triggers)


DEBOUNCE = timedelta(seconds=0.2)


@pytest.fixture
def debounced(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> Iterator[tuple[ReconcileLoop, Passes, FakeMonotonic]]:
    """A real loop on a real reconciler whose debounce runs on a fake monotonic clock."""
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "s"),
        clock=lambda: NOW,
    )
    monotonic = FakeMonotonic()
    loop = ReconcileLoop(
        reconciler,
        interval=timedelta(hours=1),
        jitter=0.0,
        report_debounce=DEBOUNCE,
        monotonic=monotonic,
    )
    passes = Passes(loop)
    loop.on_outcome = passes.record
    loop.start()
    try:
        passes.wait_for(1)
        assert loop.wait_idle(30)
        yield loop, passes, monotonic
    finally:
        loop.stop()


def test_a_report_inside_the_debounce_is_deferred_not_dropped(
    debounced: tuple[ReconcileLoop, Passes, FakeMonotonic],
) -> None:
    """A report half the debounce after another makes a pass once the debounce ends."""
    loop, passes, monotonic = debounced
    loop.reports_arrived()
    assert [("start",), ("reports",)] == passes.wait_for(2)
    monotonic.now += DEBOUNCE.total_seconds() / 2
    loop.reports_arrived()
    assert not loop.wait_idle(0.3)  # a deferred trigger is pending: the loop is not idle
    monotonic.now += DEBOUNCE.total_seconds() / 2
    assert [("start",), ("reports",), ("reports",)] == passes.wait_for(3)
    assert loop.wait_idle(30)
    assert 3 == len(passes.triggers)


def test_a_burst_of_reports_inside_the_debounce_makes_one_deferred_pass(
    debounced: tuple[ReconcileLoop, Passes, FakeMonotonic],
) -> None:
    """Twenty reports within one debounce period coalesce into one pass at its end."""
    loop, passes, monotonic = debounced
    loop.reports_arrived()
    passes.wait_for(2)
    for _ in range(20):
        monotonic.now += DEBOUNCE.total_seconds() / 40
        loop.reports_arrived()
    monotonic.now += DEBOUNCE.total_seconds()
    passes.wait_for(3)
    assert loop.wait_idle(30)
    assert [("start",), ("reports",), ("reports",)] == passes.triggers


def test_a_report_during_a_pass_makes_another_pass(
    debounced: tuple[ReconcileLoop, Passes, FakeMonotonic],
) -> None:
    """A report stored while a pass runs (after the debounce) is planned by the next pass."""
    loop, passes, monotonic = debounced
    entered, release = threading.Event(), threading.Event()
    original = loop.reconciler.reconcile

    def held() -> Outcome:
        entered.set()
        assert release.wait(30)
        return original()

    loop.reconciler.reconcile = held  # type: ignore[method-assign]
    loop.trigger("branch moved")
    assert entered.wait(30)
    monotonic.now += DEBOUNCE.total_seconds() * 2
    loop.reports_arrived()
    release.set()
    assert [("start",), ("branch moved",), ("reports",)] == passes.wait_for(3)
    assert loop.wait_idle(30)
    assert 3 == len(passes.triggers)
