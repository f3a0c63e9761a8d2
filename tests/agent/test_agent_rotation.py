"""A rotated device token, end to end with the reference agent (`python -m patchctl_agent`, the
apt backend of this host) against a real `patchctl serve`: after `devices rotate-token` the
agent's old token is refused, and once the new one is in its `token` file it runs again
(docs/operations.md, issue 16 item 4)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from required import unavailable

from controller.cli import main
from controller.testing import PROJECT_ROOT, PolicyRepo, Serve

pytestmark = pytest.mark.slow


def agent(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchctl_agent", *args, "--state-dir", str(state)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_agent_runs_with_its_rotated_token(tmp_path: Path) -> None:
    """Old token: `run --once` exits 1 with a 401; new token in the state's `token` file: 0."""
    if shutil.which("dpkg-query") is None:
        unavailable("the apt backend needs dpkg-query")
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    repo.commit("example")
    serve = Serve(database_url=f"sqlite:///{tmp_path / 'p.db'}", state_dir=tmp_path / "state")
    enrolling = tmp_path / "enrolment-token"
    enrolling.write_text(serve.token("enrollment", "acme/retail"), encoding="utf-8")
    admin = serve.token("admin", "acme/retail")
    state = tmp_path / "agent"
    serve.start("--repo", str(repo.path), "--interval", "1h")
    try:
        enrolled = agent(
            "enroll", "--server", serve.base, "--enrollment-token-file", str(enrolling),
            "--hostname", "rot-01", "--backend", "apt", state=state,
        )  # fmt: skip
        assert 0 == enrolled.returncode, enrolled.stderr
        before = agent("run", "--once", "--backend", "apt", state=state)
        rotated = CliRunner().invoke(
            main,
            ["devices", "rotate-token", "rot-01", "--server", serve.base],
            env={"PATCHCTL_TOKEN": admin},
        )
        refused = agent("run", "--once", "--backend", "apt", state=state)
        (state / "token").write_text(rotated.stdout.strip() + "\n", encoding="utf-8")
        after = agent("run", "--once", "--backend", "apt", state=state)
    finally:
        serve.stop()
    assert 0 == before.returncode, before.stderr
    assert 0 == rotated.exit_code, rotated.stderr
    assert 1 == refused.returncode
    assert "401" in refused.stderr
    assert 0 == after.returncode, after.stderr
