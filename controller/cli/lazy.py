"""A click group that imports a command's module only when that command is used.

`patchctl --help` and `patchctl validate` should not pay for importing the whole controller
(SQLAlchemy, Alembic, pydantic models, the HTTP app): `bench/cli_start.py` measures it
(issue 14, item 6).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from controller import errors


class LazyGroup(click.Group):
    """`lazy` maps a command name to (module under `controller.cli`, one-line summary).

    The module's `register(group)` adds its commands on first use. The summary is the one home
    of the line `--help` lists: it is shown while the module is not loaded and becomes the
    command's `short_help` once it is, so the listing never depends on what was imported.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's API
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(f"controller.cli.{self.lazy[cmd_name][0]}").register(self)
        return self.commands.get(cmd_name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        if (name or cmd.name) in self.lazy:
            cmd.short_help = self.lazy[name or cmd.name or ""][1]

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a patchctl error that reaches here ends it with its message and
        the exit code of its kind (`common.fail_with`), never a traceback."""
        try:
            return super().invoke(ctx)
        except errors.PatchctlError as exc:
            from controller.cli import common  # noqa: PLC0415 - `--help` imports no command module

            common.fail_with(exc)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:  # noqa: ARG002
        """The command list from the summaries, importing nothing."""
        rows = [(name, self.lazy[name][1]) for name in sorted(self.lazy)]
        rows += [
            (name, command.get_short_help_str())
            for name, command in sorted(self.commands.items())
            if name not in self.lazy and not command.hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))
