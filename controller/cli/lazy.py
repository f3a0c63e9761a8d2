"""A click group that imports a command's module only when that command is used.

`patchctl --help` and `patchctl validate` should not pay for importing the whole controller
(SQLAlchemy, Alembic, pydantic models, the HTTP app): `bench/cli_start.py` measures it
(issue 14, item 6).
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from controller import errors

_PREPARED = "controller.cli.lazy.prepared"  # in `Context.meta`, which a command tree shares
# in `Context.meta`: the rest of the command line holds a help option (read by the group's own
# callback, which runs after click has taken those arguments out of the context)
HELP_ASKED = "controller.cli.lazy.help_asked"


EXIT_READER_GONE = 128 + signal.SIGPIPE  # 141: a shell's status for a tool SIGPIPE stopped


def _stdout_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (POLLERR on its write end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or no file behind stdout
        return True


def _reader_gone() -> NoReturn:
    """Exit `EXIT_READER_GONE` without a word: standard output points at /dev/null first, so
    that the interpreter's last flush of what is still buffered fails no more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise SystemExit(EXIT_READER_GONE)


class LazyGroup(click.Group):
    """`lazy` maps a command name to (module under `controller.cli`, one-line summary).

    The module's `register(group)` adds its commands on first use. The summary is the one home
    of the line `--help` lists: it is shown while the module is not loaded and becomes the
    command's `short_help` once it is, so the listing never depends on what was imported.

    `prepare` runs once, just before the body of the command that runs: after its options are
    parsed, so never for a `--help` (which exits while they are), and not for a group whose
    sub-command follows. What only a running command needs (the logging set-up, which imports
    structlog and rich) waits there rather than in the group's own callback.
    """

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str]],
        prepare: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.prepare = prepare

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
        if self.prepare is not None:
            _prepare_first(cmd, self.prepare)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)  # what follows the command's name
        ctx.meta[HELP_ASKED] = any(arg in ctx.help_option_names for arg in rest)
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a patchctl error that reaches here ends it with its message and
        the exit code of its kind (`common.fail_with`), never a traceback. A reader of the
        output that went away (`patchctl devices | head`) ends it quietly with 141, the status
        of any tool a broken pipe stops (128 + SIGPIPE), not click's 1, which patchctl keeps
        for "no"; the output is flushed here so that this holds for the last lines too."""
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
        except BrokenPipeError:
            if not _stdout_gone():  # another pipe (git's, a socket's): not the reader's doing
                raise
            _reader_gone()
        except errors.PatchctlError as exc:
            from controller.cli import common  # noqa: PLC0415 - `--help` imports no command module

            common.fail_with(exc)
        else:
            return result

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


def _prepare_first(command: click.Command, prepare: Callable[[], None]) -> None:
    """Have `command`, and every sub-command of it, run `prepare` before its body."""
    if command.callback is not None and not isinstance(command.callback, _Prepared):
        command.callback = _Prepared(command.callback, prepare)
    if isinstance(command, click.Group):
        for sub_command in command.commands.values():
            _prepare_first(sub_command, prepare)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A command's callback that first runs `prepare`, unless a sub-command's body follows or
    another body of this invocation already ran it."""

    body: Callable[..., Any]
    prepare: Callable[[], None]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if ctx.invoked_subcommand is None and not ctx.meta.get(_PREPARED):
            ctx.meta[_PREPARED] = True
            self.prepare()
        return self.body(*args, **kwargs)
