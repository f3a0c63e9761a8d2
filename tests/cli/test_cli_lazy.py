"""The command line imports only what a command uses (issue 14, item 6).

`--help` imports no command module; a command's module, and so its `--help`, imports no store,
server, runtime or heavy library; `validate` without a state database imports no store. Each
case runs in a fresh interpreter (imports cannot be undone) and asserts module names, never
timings (`bench/cli_start.py` times them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from controller.cli import COMMANDS, lazy, main
from controller.cli.lazy import LazyGroup

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from controller.testing import PolicyRepo

PROBE = """
import json, sys
from controller.cli import main
try:
    main({args!r})
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""

# What a `--help` imports none of: the store, the server and the runtime with their libraries,
# the policy kinds and loader (pydantic, YAML, git), httpx (--server) and structlog (logging).
HEAVY = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "pydantic",
    "yaml",
    "git",
    "structlog",
    "controller.store",
    "controller.server",
    "controller.runtime",
    "controller.kinds",
    "controller.sources",
)
# Standard library only, and where the defaults that `--help` shows live (DEFAULT_LISTEN, ...).
LIGHT = frozenset({"controller.runtime", "controller.runtime.settings"})
STORE = ("sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn", "controller.store")


def run_probe(*args: str, cwd: Path | None = None) -> tuple[int | str | None, list[str]]:
    """`patchctl ARGS` in a fresh interpreter: its exit code and every module it imported."""
    code = PROBE.format(args=list(args))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=cwd,
    ).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    return answer["code"], answer["modules"]


def under(modules: Iterable[str], roots: Iterable[str]) -> list[str]:
    """The modules that are one of `roots` or inside one, sorted."""
    return sorted(m for m in modules if any(m == r or m.startswith(f"{r}.") for r in roots))


def heavy(modules: Iterable[str]) -> list[str]:
    return [m for m in under(modules, HEAVY) if m not in LIGHT]


def command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command under `group`, depth first (loads their modules here)."""
    ctx = click.Context(group)
    paths: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


PATHS = [pytest.param(path, id=" ".join(path)) for path in command_paths()]


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    """`patchctl --help` lists every command from the summaries alone."""
    _, modules = run_probe("--help")
    commands = [
        m
        for m in under(modules, ["controller.cli"])
        if m not in {"controller.cli", "controller.cli.lazy"}
    ]
    assert ([], []) == (heavy(modules), commands)


def test_one_command_imports_only_its_own_module() -> None:
    """`patchctl schema --help` loads the schema commands, not the store or the server."""
    _, modules = run_probe("schema", "--help")
    assert "controller.cli.schema" in modules
    assert "controller.cli.serve" not in modules


def test_every_command_path_is_probed() -> None:
    """The walk reaches every top-level command and the sub-commands of groups."""
    paths = command_paths()
    assert set(COMMANDS) == {path[0] for path in paths}
    assert {("devices", "retire"), ("feed", "import"), ("token", "create")} <= set(paths)


@pytest.mark.parametrize("path", PATHS)
def test_a_command_help_imports_nothing_heavy(path: tuple[str, ...], tmp_path: Path) -> None:
    """`patchctl <command> --help` imports no store, server, runtime, policy loader or logging."""
    code, modules = run_probe(*path, "--help", cwd=tmp_path)
    assert (0, []) == (code, heavy(modules))


def test_validate_without_a_database_imports_no_store(
    policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """Validating a repository, with no state database, imports what validation uses only."""
    state = tmp_path / "state"
    code, modules = run_probe(
        "validate", "--repo", str(policy_repo.path), "--state-dir", str(state)
    )
    assert (0, []) == (code, under(modules, STORE))


def test_every_summary_names_a_command_its_module_registers() -> None:
    """Each table entry resolves to a command of that name whose listed help is the summary."""
    ctx = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert name == command.name
        assert summary == command.get_short_help_str(limit=200)


@pytest.mark.parametrize(
    ("args", "calls"),
    [
        pytest.param(["leaf"], ["prepare", "leaf"], id="leaf"),
        pytest.param(["leaf", "--help"], [], id="leaf --help"),
        pytest.param(["nest"], ["prepare", "nest"], id="group"),
        pytest.param(["nest", "--help"], [], id="group --help"),
        pytest.param(["nest", "sub"], ["nest", "prepare", "sub"], id="group sub"),
        pytest.param(["nest", "sub", "--help"], ["nest"], id="group sub --help"),
    ],
)
def test_prepare_runs_once_before_the_body_that_runs(args: list[str], calls: list[str]) -> None:
    """A group's `prepare` runs once, before the body of the command that runs (not before a
    group's own body when a sub-command follows), and never for `--help`."""
    seen: list[str] = []
    root = LazyGroup("root", lazy={}, prepare=lambda: seen.append("prepare"))

    @click.group(invoke_without_command=True)
    def nest() -> None:
        seen.append("nest")

    @nest.command()
    def sub() -> None:
        seen.append("sub")

    @click.command()
    def leaf() -> None:
        seen.append("leaf")

    root.add_command(nest)
    root.add_command(leaf)
    result = CliRunner().invoke(root, args)
    assert (0, calls) == (result.exit_code, seen)


def test_every_command_body_is_prepared_first() -> None:
    """Each command and sub-command with a body runs the group's `prepare` before it (which
    stops on a configuration file that did not load), however its module registered it."""
    unprepared = []
    for path in command_paths():
        command: click.Command | None = main
        for name in path:
            assert isinstance(command, click.Group)
            command = command.get_command(click.Context(command), name)
        assert command is not None
        if command.callback is not None and not isinstance(command.callback, lazy._Prepared):
            unprepared.append(" ".join(path))
    assert [] == unprepared
