"""A command that only reads state never creates an empty database: run in the wrong folder,
it says where it looked (issue 16, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main

EXAMPLE = str(Path(__file__).resolve().parents[2])  # the example policy repository (acme)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["status"], id="status"),
        pytest.param(["devices"], id="devices"),
        pytest.param(["jobs"], id="jobs"),
        pytest.param(["jobs", "show", "scan-1"], id="jobs-show"),
        pytest.param(["alerts"], id="alerts"),
        pytest.param(["patches"], id="patches"),
        pytest.param(["explain", "web-01"], id="explain"),
        pytest.param(["audit", "--no-sync"], id="audit"),
        pytest.param(["report", "--out", "r"], id="report"),
        pytest.param(["token", "list"], id="token-list"),
        pytest.param(["token", "revoke", "abc"], id="token-revoke"),
    ],
)
def test_a_read_command_on_a_missing_database_says_so(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming the database file; no file or state directory is created."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, command)
    assert 2 == result.exit_code, result.output
    assert f"no state database at {tmp_path / '.patchctl' / 'patchctl.db'}" in result.stderr
    assert [] == sorted(p.name for p in tmp_path.iterdir())


def test_commands_that_build_state_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token create` starts a new state directory as before."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["token", "create", "--tenant", "acme", "--repo", EXAMPLE])
    assert 0 == result.exit_code, result.output
    assert (tmp_path / ".patchctl" / "patchctl.db").is_file()


def test_plan_with_a_db_that_names_no_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan --db sqlite:///…` of a file that does not exist: exit 2 naming it, nothing
    created (it crashed on the empty database it had created)."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "sub" / "p.db"
    command = ["plan", "--repo", EXAMPLE, "--base", "HEAD", "--head", "HEAD"]
    result = CliRunner().invoke(main, [*command, "--db", f"sqlite:///{missing}"])
    assert 2 == result.exit_code, result.output
    assert f"no state database at {missing}" in result.stderr
    assert [] == sorted(p.name for p in tmp_path.iterdir())
