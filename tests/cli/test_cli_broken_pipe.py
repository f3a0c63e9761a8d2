"""A reader of patchctl's output that goes away (`patchctl devices | head`): the command ends
quietly with 141, what a shell reports for any tool a broken pipe stops, never click's 1 (which
patchctl keeps for "no") nor a traceback or Python's "Exception ignored" at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.cli.lazy import EXIT_READER_GONE
from controller.store import open_store
from controller.testing import PROJECT_ROOT
from controller.testing.stores import enrol_linux


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`patchctl ARGS` with its standard output a pipe whose reader closed before it started:
    the first write of the command's output fails, however little it writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "controller.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def fleet_db(tmp_path: Path) -> str:
    """A state database with 400 enrolled devices: more listing than a pipe's buffer holds."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(db)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            for number in range(400):
                enrol_linux(conn, f"web-{number:03d}", now=now)
    finally:
        store.close()
    return db


def test_output_written_while_the_command_runs(fleet_db: str) -> None:
    """The listing's writes fail in the command's body."""
    done = run_into_closed_pipe("devices", "--db", fleet_db, "--limit", "400")
    assert EXIT_READER_GONE == done.returncode
    assert b"" == done.stderr


def test_output_still_buffered_when_the_command_ends() -> None:
    """A short answer is written when the output is flushed at the end."""
    done = run_into_closed_pipe("validate", "--repo", str(PROJECT_ROOT))
    assert EXIT_READER_GONE == done.returncode
    assert b"" == done.stderr


@pytest.mark.parametrize(("reader_open", "gone"), [(True, False), (False, True)])
def test_only_a_broken_standard_output_is_the_readers_doing(reader_open: bool, gone: bool) -> None:
    """A broken pipe of another kind (git's, a socket's) is not taken for the reader of the
    output going away: only a standard output nobody reads ends quietly with 141."""
    read_end, write_end = os.pipe()
    if not reader_open:
        os.close(read_end)
    code = "import sys; from controller.cli import lazy; sys.stderr.write(str(lazy._stdout_gone()))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
        if reader_open:
            os.close(read_end)
    assert (0, str(gone)) == (done.returncode, done.stderr.decode())
