"""Git object stores are closed when done: many passes leave no `git cat-file` children and no
open descriptors behind (issue 11.10).

GitPython keeps `git cat-file --batch` processes per Repo object until it is closed or
garbage-collected; `patchctl serve` tunes the collector to run rarely, so these tests switch it
off while they run: only an explicit close frees the processes then.
"""

from __future__ import annotations

import gc
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from controller.runtime import audit
from controller.runtime.access import AccessPolicy
from controller.runtime.loop import BranchWatcher
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.sources import repository

if TYPE_CHECKING:
    from collections.abc import Iterator

    from controller.store import Store
    from controller.testing import PolicyRepo

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
PASSES = 12


def child_processes() -> list[str]:
    """The command lines of this process's children (from /proc, no psutil)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Field 4 (ppid) follows the command name in parentheses, which may hold spaces.
            ppid = stat.rsplit(")", 1)[1].split()[1]
            if ppid == me:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # exited while we looked
    return sorted(found)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Like `serve`'s tuned collector: cyclic garbage (a forgotten Repo) is not collected."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    from controller.store import open_store  # noqa: PLC0415

    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


@pytest.mark.parametrize("remote", [False, True], ids=["local-path", "file-url-mirror"])
def test_reconcile_passes_and_audit_syncs_leave_no_children(
    policy_repo: PolicyRepo, store: Store, tmp_path: Path, collector_off: None, remote: bool
) -> None:
    """Reconcile passes (audit sync included), branch polls and validate reads keep the
    number of child processes and open descriptors flat."""
    spec = f"file://{policy_repo.path}" if remote else str(policy_repo.path)
    state_dir = tmp_path / "state"
    clock = [NOW]
    reconciler = Reconciler(
        store=store, source=PolicySource(spec, "main", state_dir), clock=lambda: clock[0]
    )
    trail = audit.AuditTrail(
        store=store, repo=spec, branch="main", state_dir=state_dir, access=AccessPolicy.open()
    )
    watcher = BranchWatcher(_NoLoop(), repo=spec, branch="main", state_dir=state_dir)  # type: ignore[arg-type]

    def one_pass(number: int) -> None:
        policy_repo.write("inventory/notes.yaml", f"# pass {number}\n")
        policy_repo.commit(f"pass {number}")
        reconciler.reconcile()
        trail.sync(now=clock[0], fetch=remote)
        watcher.check()
        repository.load(spec, state_dir=state_dir, branch="main")

    one_pass(0)  # warm-up: the test's own repository handle starts its helpers here
    children, descriptors = child_processes(), open_descriptors()
    for number in range(1, PASSES + 1):
        one_pass(number)

    assert children == child_processes()
    assert descriptors >= open_descriptors()


class _NoLoop:
    def trigger(self, reason: str) -> None:
        """A moved branch needs no pass here."""
