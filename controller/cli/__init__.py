"""The `patchctl` command line.

Exit codes (every command): 0 success; 1 the answer is "no" (invalid policy, changes found with
`--exit-code`, a failed check); 2 usage, configuration or I/O error.

Options can also come from `PATCHCTL_<OPTION>` environment variables (e.g. `PATCHCTL_REPO`,
`PATCHCTL_DB`, `PATCHCTL_STATE_DIR`) and from a `patchctl.toml` in the current directory, whose
tables are named after the commands (`[validate]`, `[serve]`, ...).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from controller import __version__
from controller.cli import agents as agent_commands
from controller.cli import audit as audit_commands
from controller.cli import demo as demo_commands
from controller.cli import feeds as feed_commands
from controller.cli import operate as operate_commands
from controller.cli import planning as planning_commands
from controller.cli import reports as report_commands
from controller.cli import scaffold as scaffold_commands
from controller.cli import schema as schema_commands
from controller.cli import serve as serve_commands
from controller.cli import simulate as simulate_commands
from controller.cli import tokens as token_commands
from controller.cli import validate as validate_commands

CONFIG_FILE = "patchctl.toml"


def _default_map() -> dict[str, Any]:
    path = Path(CONFIG_FILE)
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{CONFIG_FILE}: {exc}") from None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "PATCHCTL"},
    epilog="Exit codes: 0 success, 1 negative answer (e.g. invalid policy), 2 usage or I/O error.",
)
@click.version_option(__version__, prog_name="patchctl")
@click.pass_context
def main(ctx: click.Context) -> None:
    """patchctl: declarative GitOps patch management for Windows and Linux fleets.

    Policies (baselines, whitelists, approvals, patch windows, scripts) live as YAML in a git
    repository; agents report what is installed and missing; patchctl decides what to install,
    when, and explains why.
    """
    ctx.default_map = _default_map()


for module in (
    validate_commands,
    scaffold_commands,
    schema_commands,
    serve_commands,
    simulate_commands,
    token_commands,
    operate_commands,
    feed_commands,
    planning_commands,
    report_commands,
    audit_commands,
    demo_commands,
    agent_commands,
):
    module.register(main)
