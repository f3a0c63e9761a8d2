"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from controller import errors
from controller.vocabularies import TENANT_PATTERN

if TYPE_CHECKING:
    from controller.config import Config

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_NO = errors.EXIT_FAILURE
EXIT_USAGE = errors.EXIT_USAGE


def repo_options(func: F) -> F:
    """--repo, --branch and --state-dir, as every command that reads the policy takes them."""
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(".patchctl"),
        show_default=True,
        envvar="PATCHCTL_STATE_DIR",
        show_envvar=True,
        help="Where clones, the SQLite database and status live.",
    )(func)
    return source_options(func)


DEFAULT_BRANCH = "main"


def source_options(func: F) -> F:
    """--repo and --branch for commands that only read a policy (`validate`, `plan`): the
    checked-out branch by default, because reading a work in progress is their purpose.
    (Commands that also open the store take --state-dir from the store options.)"""
    func = click.option(
        "--branch", default=None, help="Branch to read (default: the checked-out one)."
    )(func)
    return _repo_option(func)


def enforced_source_options(func: F) -> F:
    """--repo and --branch for commands that enforce or record a policy (`serve`, `reconcile`,
    `explain`, `audit`, `report`): always a named branch, `main` by default, read from git
    objects. The checked-out branch and the working tree are never enforced (DESIGN §7): a
    `git checkout -b wip` in the served directory must not apply unreviewed commits."""
    func = click.option(
        "--branch",
        default=DEFAULT_BRANCH,
        show_default=True,
        envvar="PATCHCTL_BRANCH",
        show_envvar=True,
        help="The reviewed branch to enforce; never the checked-out one.",
    )(func)
    return _repo_option(func)


def _repo_option(func: F) -> F:
    return click.option(
        "--repo",
        default=".",
        show_default=True,
        envvar="PATCHCTL_REPO",  # named: click's own would be PATCHCTL_<COMMAND>_REPO
        show_envvar=True,
        help="Policy repository: a local path or a git URL.",
    )(func)


def check_tenant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A `--tenant` option's value: a tenant path (`controller.vocabularies.TENANT_PATTERN`),
    else a usage error naming the option (exit 2); None when not given."""
    if value is not None and not re.fullmatch(TENANT_PATTERN, value):
        raise click.BadParameter(
            f"{value!r} is not a tenant path: a partner (acme) or a client (acme/retail), "
            "lowercase letters, digits and '-'"
        )
    return value


def duration_value(
    *, allow_zero: bool = False
) -> Callable[[click.Context, click.Parameter, str | None], timedelta | None]:
    """A click callback for a DURATION option (`90s`, `4h`, `7d`, `1h30m`): the timedelta, None
    when not given, else a usage error naming the option (exit 2) for text that is not a
    duration, one longer than 100 years (`kinds.common.parse_duration`) or, unless
    `allow_zero`, a zero one (`kinds.common.check_positive_duration`, the policy fields' rule)."""

    def callback(
        _ctx: click.Context, _param: click.Parameter, value: str | None
    ) -> timedelta | None:
        if value is None:
            return None
        from controller.kinds import common  # noqa: PLC0415 - keep --help fast

        try:
            duration = common.parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        try:
            return duration if allow_zero else common.check_positive_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from None

    return callback


def time_value(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """A click callback for a time option (`--now`, `audit --since`): a date (midnight UTC) or
    an ISO 8601 time (UTC unless it has an offset), between 1970 and 9000
    (`core.instants.parse_time`); None when not given, else a usage error naming the option."""
    if value is None:
        return None
    from controller.core import instants  # noqa: PLC0415 - keep --help fast

    try:
        return instants.parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str, sort_keys=False)
    sys.stdout.write("\n")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print `patchctl: message` on stderr and exit; for user and I/O errors, never a traceback."""
    click.echo(f"patchctl: {message}", err=True)
    sys.exit(code)


def fail_with(error: BaseException) -> NoReturn:
    """Print `patchctl: <the error>` on stderr and exit with the code of its kind
    (`controller.errors.exit_code`): 1 needs-a-human, 2 usage, configuration, wait-until and
    transient errors. The one place the CLI turns an exception into an exit code."""
    click.echo(f"patchctl: {error}", err=True)
    sys.exit(errors.exit_code(error))


def access_policy_option(func: F) -> F:
    """--access-policy FILE (also PATCHCTL_ACCESS_POLICY)."""
    return click.option(
        "--access-policy",
        "access_policy",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="PATCHCTL_ACCESS_POLICY",
        show_envvar=True,
        metavar="FILE",
        help="TOML file whose [access] table says who may approve per tenant and which commits "
        "must be signed. Default: the [access] table of the configuration file, if any.",
    )(func)


def load_access_or_fail(path: Path | None) -> Any:
    """The access policy (`controller.runtime.access.AccessPolicy`): the `[access]` table of
    `path` when given, else of the configuration file (`--config`, ./patchctl.toml), else the
    open policy. Exits 2 naming the file and the field."""
    from controller.runtime import access  # noqa: PLC0415 - keep --help fast

    try:
        if path is not None:
            return access.load_access(path, required=True)
        config = current_config()
        table = config.table("access")
        if table is not None:
            return access.parse_access(table, base_dir=config.base_dir, source=config.source)
    except access.AccessError as exc:
        fail_with(exc)
    return access.AccessPolicy.open()


def current_config() -> Config:
    """The configuration file as the `patchctl` group read it (empty outside a command)."""
    from controller.config import Config  # noqa: PLC0415 - keep --help fast

    context = click.get_current_context(silent=True)
    found = context.find_object(Config) if context is not None else None
    return found if found is not None else Config()
