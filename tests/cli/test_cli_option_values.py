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


def options_parsed_by(*callbacks: str) -> list[tuple[tuple[str, ...], str, str]]:
    """(command path, option, callback name) of every option whose callback is one of
    `callbacks` (by qualified name: the shared `duration_value`/`time_value`, alerts' own)."""
    found: list[tuple[tuple[str, ...], str, str]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            for param in command.params:
                kind = getattr(param.callback, "__qualname__", "").split(".")[0]
                if kind in callbacks:
                    found.append(((*prefix, name), param.opts[0], kind))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(main, ())
    return found


DURATION_OPTIONS = options_parsed_by("duration_value")
TIME_OPTIONS = options_parsed_by("time_value", "_instant")


def test_every_duration_and_time_option_is_found() -> None:
    """The walk finds the options operators type durations and times into."""
    durations = {(" ".join(path), option) for path, option, _ in DURATION_OPTIONS}
    times = {(" ".join(path), option) for path, option, _ in TIME_OPTIONS}
    assert {
        ("token create", "--expires-in"),
        ("serve", "--interval"),
        ("serve", "--poll-interval"),
        ("simulate", "--duration"),
        ("simulate", "--ramp-up"),
    } <= durations
    assert {
        ("reconcile", "--now"),
        ("explain", "--now"),
        ("plan", "--now"),
        ("report", "--now"),
        ("audit", "--since"),
        ("alerts", "--since"),
        ("alerts", "--until"),
    } <= times


@pytest.mark.parametrize(
    ("path", "option", "value", "message"),
    [
        (path, option, value, message)
        for path, option, _ in DURATION_OPTIONS
        for value, message in [
            ("99999999d", "'99999999d' is longer than 100 years (36525d)"),
            ("9999999999999d", "'9999999999999d' is longer than 100 years (36525d)"),
        ]
    ]
    + [
        (path, option, "9999-12-31T23:59Z", "is not between 1970-01-01 and 9000-01-01")
        for path, option, _ in TIME_OPTIONS
    ]
    + [
        (path, option, "0001-01-01T00:00+05:00", "is not between 1970-01-01 and 9000-01-01")
        for path, option, _ in TIME_OPTIONS
    ]
    + [
        (path, option, "999999d", "'999999d' is not between 1970-01-01 and 9000-01-01")
        for path, option, kind in TIME_OPTIONS
        if kind == "_instant"
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_a_duration_or_time_beyond_the_calendar_is_a_usage_error(
    path: tuple[str, ...],
    option: str,
    value: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exit 2 naming the option, never an OverflowError traceback, and nothing created."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*path, f"{option}={value}"])
    assert (2, True) == (
        result.exit_code,
        f"Invalid value for '{option}': " in result.stderr and message in result.stderr,
    ), result.output
    assert [] == sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("path", "option"),
    [(path, option) for path, option, _ in DURATION_OPTIONS if option != "--ramp-up"],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_a_zero_duration_is_a_usage_error(
    path: tuple[str, ...], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero expiry, interval or run time is refused (exit 2) naming the option."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*path, option, "0s"])
    assert (2, True) == (
        result.exit_code,
        f"'{option}': '0s': must be longer than 0s" in result.stderr,
    )
    assert [] == sorted(p.name for p in tmp_path.iterdir())


SERVER_COMMANDS = commands_with("server")


def test_the_server_option_is_found_where_operators_use_it() -> None:
    """The walk finds the read, admin and simulate commands (so the test below covers them)."""
    expected = {("devices",), ("jobs", "cancel"), ("explain",), ("plan",), ("simulate",)}
    assert expected <= set(SERVER_COMMANDS)


@pytest.mark.parametrize("path", SERVER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("server", ["notaurl", "ftp://patchctl.example", "http://"])
def test_a_server_that_is_not_an_http_url_is_a_usage_error(
    path: tuple[str, ...], server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming `--server` before anything is read, written or sent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATCHCTL_TOKEN", "pcr_x")
    result = CliRunner().invoke(main, [*path, "--server", server])
    assert (2, True) == (
        result.exit_code,
        "Invalid value for '--server'" in result.stderr
        and f"{server!r} is not an http:// or https:// URL" in result.stderr,
    ), result.output
    assert [] == sorted(p.name for p in tmp_path.iterdir())
