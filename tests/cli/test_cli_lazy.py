"""The command line imports a command's module only when that command runs (issue 14, item 6)."""

from __future__ import annotations

import subprocess
import sys

import click

from controller.cli import COMMANDS, main

PROBE = """
import sys
from controller.cli import main
try:
    main({args!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("sqlalchemy", "pydantic", "fastapi", "alembic", "yaml") if m in sys.modules)
commands = sorted(m for m in sys.modules if m.startswith("controller.cli.") and m != "controller.cli.lazy")
print(heavy, commands)
"""


def imported_after(*args: str) -> str:
    code = PROBE.format(args=list(args))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return out.strip().splitlines()[-1]


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    """`patchctl --help` lists every command from the summaries alone."""
    assert "[] []" == imported_after("--help")


def test_one_command_imports_only_its_own_module() -> None:
    """`patchctl schema --help` loads the schema commands, not the store or the server."""
    assert "controller.cli.schema" in imported_after("schema", "--help")
    assert "controller.cli.serve" not in imported_after("schema", "--help")


def test_every_summary_names_a_command_its_module_registers() -> None:
    """Each table entry resolves to a command of that name whose listed help is the summary."""
    ctx = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert name == command.name
        assert summary == command.get_short_help_str(limit=200)
