"""Option values are checked before a command reads or writes anything: a `--tenant` that is
not a tenant path and a `--state` that is not a job state are usage errors (exit 2) naming the
option, for every command that takes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from controller.cli import main

if TYPE_CHECKING:
    from pathlib import Path


def commands_with(option: str) -> list[tuple[str, ...]]:
    """The command paths (e.g. ("jobs",), ("token", "create")) that take `--<option>`."""
    found: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            if any(f"--{option}" in param.opts for param in command.params):
                found.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(main, ())
    return found


TENANT_COMMANDS = commands_with("tenant")


def test_the_tenant_option_is_found_where_operators_use_it() -> None:
    """The walk finds the reading and the token commands (so the test below covers them)."""
    expected = {("alerts",), ("audit",), ("devices",), ("jobs",), ("status",), ("report",)}
    assert expected | {("explain",), ("token", "create")} <= set(TENANT_COMMANDS)


@pytest.mark.parametrize("path", TENANT_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("tenant", ["Bad Tenant!", "acme/", "../etc", "ACME"])
def test_a_tenant_that_is_not_a_tenant_path_is_a_usage_error(
    path: tuple[str, ...], tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming `--tenant`, and nothing created (no state directory, no report)."""
    monkeypatch.chdir(tmp_path)
    required = {"explain": ["web-01"], "report": ["--out", "r"]}.get(path[-1], [])
    result = CliRunner().invoke(main, [*path, *required, "--tenant", tenant])
    assert 2 == result.exit_code, result.output
    assert "Invalid value for '--tenant'" in result.stderr
    assert f"{tenant!r} is not a tenant path" in result.stderr
    assert [] == sorted(p.name for p in tmp_path.iterdir())


def test_a_job_state_that_is_not_one_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobs --state` lists the states instead of answering an empty table."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["jobs", "--state", "bogus"])
    assert 2 == result.exit_code, result.output
    assert "'bogus' is not a job state: one of pending, delivered" in result.stderr
    assert [] == sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("path", "token"),
    [
        (("devices",), "a read token"),
        (("status",), "a read token"),
        (("report",), "a read token"),
        (("devices", "retire"), "an admin token"),
        (("jobs", "cancel"), "an admin token"),
        (("alerts", "ack"), "an admin token"),
        (("token", "revoke"), "an admin token"),
        (("token", "list"), "an admin token"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_server_help_names_the_token_the_command_needs(path: tuple[str, ...], token: str) -> None:
    """A command that changes something (or reads the admin API) asks for an admin token."""
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
    assert 0 == result.exit_code, result.output
    assert f"with {token} in PATCHCTL_TOKEN" in " ".join(result.output.split())
