"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2


def repo_options(func: F) -> F:
    """--repo, --branch and --state-dir, as every command that reads the policy takes them."""
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(".patchctl"),
        show_default=True,
        help="Where clones, the SQLite database and status live.",
    )(func)
    return source_options(func)


def source_options(func: F) -> F:
    """--repo and --branch: where the policy comes from (commands that also open the store
    take --state-dir from the store options)."""
    func = click.option(
        "--branch", default=None, help="Branch to read (default: the checked-out one)."
    )(func)
    return click.option(
        "--repo",
        default=".",
        show_default=True,
        help="Policy repository: a local path or a git URL.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str, sort_keys=False)
    sys.stdout.write("\n")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print `patchctl: message` on stderr and exit; for user and I/O errors, never a traceback."""
    click.echo(f"patchctl: {message}", err=True)
    sys.exit(code)
