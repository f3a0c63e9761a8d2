"""`controller.testing`, the helpers shipped for tests of patchctl and of code extending it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from controller.testing import PROJECT_ROOT, PolicyRepo, SettableClock, policy_repository, run_cli
from controller.testing.replicas import Replica


def test_importing_the_helpers_loads_no_pytest() -> None:
    """Every submodule imports without pytest or the suite's own modules on the path."""
    code = (
        "import sys, controller.testing, controller.testing.fleets, controller.testing.replicas; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'pytest', '_pytest', 'conftest'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert (0, "[]\n") == (done.returncode, done.stdout), done.stderr


def test_the_clock_moves_only_when_told() -> None:
    """Calling the clock gives the same instant until `advance` moves it."""
    clock = SettableClock(datetime(2026, 1, 1, tzinfo=UTC))
    before = (clock(), clock())
    moved = clock.advance(hours=1, minutes=30)
    assert (datetime(2026, 1, 1, tzinfo=UTC),) * 2 == before
    assert datetime(2026, 1, 1, 1, 30, tzinfo=UTC) == moved == clock()


def test_run_cli_gives_exit_code_and_output_and_restores_the_process(tmp_path: Path) -> None:
    """A command runs in `cwd` with `env`; directory and environment are restored afterwards."""
    repo = policy_repository(tmp_path / "repo")
    here, environ = Path.cwd(), dict(os.environ)
    code, out, err = run_cli("validate", cwd=tmp_path, env={"PATCHCTL_REPO": str(repo.path)})
    failed = run_cli("validate", "--rev", "no-such-rev", cwd=repo.path)
    assert (0, "", 2) == (code, err, failed.exit_code), out + err
    assert "no-such-rev" in failed.stderr
    assert (here, environ) == (Path.cwd(), dict(os.environ))


def test_a_policy_repository_commits_what_is_written(tmp_path: Path) -> None:
    """`write` then `commit` gives a commit whose tree holds the file."""
    repo = PolicyRepo(tmp_path / "r")
    repo.write("policies/a.yaml", "kind: x\n")
    sha = repo.commit("add a")
    assert ("kind: x", "Alice Admin") == (
        repo.repo.git.show(f"{sha}:policies/a.yaml"),
        repo.repo.commit(sha).author.name,
    )


def test_a_replica_log_cut_by_a_kill_reads_as_its_whole_records(tmp_path: Path) -> None:
    """A kill -9 between a record and its newline, or inside a record, leaves the next
    process's first record on the same line: each whole record is read, a cut-off one left
    out, other lines (a traceback) ignored."""
    log = tmp_path / "serve.log"
    log.write_text(
        '{"event": "one", "level": "info"}\n'
        '{"event": "two", "details": {"n": 1}}{"event": "three"}\n'
        '{"event": "cut off", "detail": "x{"event": "four", "level": "error"}\n'
        "Traceback: {not json}\n"
        '{"event": "five"}\n'
    )
    replica = Replica(args=[], base="http://127.0.0.1:1", log_path=log)
    events = [record.get("event") for record in replica.log_lines()]
    assert ["one", "two", "three", "four", "five"] == events
