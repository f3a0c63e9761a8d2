"""The reconcile loop: triggers coalesce, a moved branch is seen, stop() returns."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gitrepos import PolicyRepo

from controller.runtime.loop import BranchWatcher, ReconcileLoop
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.store import Store, open_store

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


def test_stop_returns_promptly(example_repo: PolicyRepo, store: Store, tmp_path: Path) -> None:
    """stop() ends the loop thread without waiting for the interval."""
    loop = make_loop(example_repo, store, tmp_path)
    loop.start()
    loop.wait_idle(30)
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 5
