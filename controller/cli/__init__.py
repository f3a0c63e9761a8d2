"""The `patchctl` command line.

Exit codes (every command): 0 success; 1 the answer is "no" (invalid policy, changes found with
`--exit-code`, a failed check); 2 usage, configuration or I/O error.

Options can also come from `PATCHCTL_<OPTION>` environment variables (e.g. `PATCHCTL_REPO`,
`PATCHCTL_DB`, `PATCHCTL_STATE_DIR`) and from the configuration file (`controller.config`):
`./patchctl.toml` or `--config FILE`, read once, validated as a whole, unknown keys refused.
"""

from __future__ import annotations

from pathlib import Path

import click

from controller import __version__
from controller.cli import agents as agent_commands
from controller.cli import alerts as alert_commands
from controller.cli import audit as audit_commands
from controller.cli import demo as demo_commands
from controller.cli import devices as device_commands
from controller.cli import feeds as feed_commands
from controller.cli import jobs as job_commands
from controller.cli import operate as operate_commands
from controller.cli import operations as operation_commands
from controller.cli import planning as planning_commands
from controller.cli import reports as report_commands
from controller.cli import scaffold as scaffold_commands
from controller.cli import schema as schema_commands
from controller.cli import serve as serve_commands
from controller.cli import simulate as simulate_commands
from controller.cli import tokens as token_commands
from controller.cli import validate as validate_commands


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "PATCHCTL"},
    epilog="Exit codes: 0 success, 1 negative answer (e.g. invalid policy), 2 usage or I/O error.",
)
@click.version_option(__version__, prog_name="patchctl")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="PATCHCTL_CONFIG",
    show_envvar=True,
    metavar="FILE",
    help="Configuration file (default: ./patchctl.toml when it exists). Unknown keys are "
    "errors; see docs/configuration.md.",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """patchctl: declarative GitOps patch management for Windows and Linux fleets.

    Policies (baselines, whitelists, approvals, patch windows, scripts) live as YAML in a git
    repository; agents report what is installed and missing; patchctl decides what to install,
    when, and explains why.
    """
    from controller import config, logs  # noqa: PLC0415 - keep --help fast

    # One-shot commands answer on stdout; their log lines (warnings and errors, redacted) go
    # to stderr. `serve` and `demo` configure their own level.
    logs.configure(level="warning", cache_loggers=False)
    try:
        loaded = config.load(config_path, cli=main, required=config_path is not None)
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.default_map = dict(loaded.defaults)
    ctx.obj = loaded


for module in (
    validate_commands,
    scaffold_commands,
    schema_commands,
    serve_commands,
    simulate_commands,
    token_commands,
    operate_commands,
    device_commands,
    job_commands,
    alert_commands,
    operation_commands,  # sub-commands of the device, job and alert groups: after them
    feed_commands,
    planning_commands,
    report_commands,
    audit_commands,
    demo_commands,
    agent_commands,
):
    module.register(main)
