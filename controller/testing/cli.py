"""Run `patchctl` commands in this process, as a test or an extension would."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from click.testing import CliRunner

from controller.cli import main


class Result(NamedTuple):
    """What one command left behind: its exit code (each command's documentation lists them), and
    its standard output and error as text. Unpacks as `code, out, err`."""

    exit_code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None
) -> Result:
    """Run `patchctl *args` in this process, through click's runner.

    `cwd` is the working directory during the command (default: unchanged; `patchctl.toml`
    is looked up there); `env` sets those environment variables for the command only. An
    exception escaping the command gives exit code 1 with the exception's text on stderr, as
    the installed entry point would. Not thread-safe: it changes the process's directory.
    """
    directory = contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()
    with directory:
        result = CliRunner().invoke(main, list(args), env=dict(env or {}))
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += f"{type(result.exception).__name__}: {result.exception}\n"
    return Result(result.exit_code, result.stdout, stderr)
