"""The `patchctl` command line.

Exit codes (every command): 0 success; 1 the answer is "no" (invalid policy, changes found with
`--exit-code`, a failed check); 2 usage, configuration or I/O error; 141 the reader of the output
went away (`patchctl devices | head`: 128 + SIGPIPE, as for any tool a broken pipe stops).

Options can also come from environment variables and from the configuration file
(`controller.config`): `./patchctl.toml` or `--config FILE`, read once, validated as a whole,
unknown keys refused. The options many commands share name theirs, `PATCHCTL_<OPTION>`
(`PATCHCTL_REPO`, `PATCHCTL_DB`, `PATCHCTL_STATE_DIR`, `PATCHCTL_SERVER`, ...: each command's
`--help` shows them); any other option reads click's `PATCHCTL_<COMMAND>_<OPTION>` (e.g.
`PATCHCTL_JOBS_LIMIT`, `PATCHCTL_TOKEN_CREATE_KIND`).
"""

from __future__ import annotations

from pathlib import Path

import click

from controller import __version__
from controller.cli.lazy import HELP_ASKED, LazyGroup

# Command → (module under controller.cli that registers it, the one-line summary that
# `patchctl --help` lists). The modules are imported only when their command runs: each pulls
# in SQLAlchemy, pydantic or git, and `--help` should not pay for that (issue 14, item 6).
COMMANDS = {
    "agent": ("agents", "Bundle and describe the reference agent."),
    "alerts": ("alerts", "Alerts, newest first; acknowledge or resolve one."),
    "audit": ("audit", "The audit trail: who changed what, and what followed."),
    "demo": ("demo", "Run the whole loop on the example repository."),
    "devices": ("devices", "Enrolled devices; retire one or rotate its token."),
    "explain": ("operate", "Why each patch of a device is or is not installed."),
    "feed": ("feeds", "Import vendor advisories into the catalogue."),
    "init": ("scaffold", "Scaffold a policy repository."),
    "jobs": ("jobs", "Jobs, newest first; show, cancel or retry one."),
    "patches": ("feeds", "The patch catalogue."),
    "plan": ("planning", "What merging HEAD into BASE would do, in words."),
    "reconcile": ("operate", "Run one reconcile pass."),
    "report": ("reports", "Write compliance reports from the state store."),
    "schema": ("schema", "JSON Schemas of the policy kinds."),
    "serve": ("serve", "Run the service: reconcile loop, APIs, dashboard."),
    "simulate": ("simulate", "Run simulated agents against a service."),
    "status": ("operate", "Compliance, approvals, revisions and conditions."),
    "token": ("tokens", "Create, list and revoke tokens."),
    "validate": ("validate", "Check every policy file."),
}


_CONFIG_ERROR = "controller.cli.config_error"  # in `Context.meta`: a file that did not load


def _before_command() -> None:
    """Just before a command's body (never for a `--help`): a configuration file that did not
    load, left for a command line that asked for help (so that `patchctl <command> --help`
    answers while the file is being fixed), stops the command here; then logging: one-shot
    commands answer on stdout, their log lines (warnings and errors, redacted) go to stderr
    (`serve` and `demo` configure their own)."""
    from controller import logs  # noqa: PLC0415 - keep --help fast

    error = click.get_current_context().meta.get(_CONFIG_ERROR)
    if error is not None:
        raise click.UsageError(error)
    logs.configure(level="warning", cache_loggers=False)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    prepare=_before_command,  # `<command> --help` needs neither a valid file nor logging
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "PATCHCTL"},
    epilog="Exit codes: 0 success, 1 negative answer (e.g. invalid policy), 2 usage or I/O error, "
    "141 the output's reader went away (a pipe into `head`).",
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
    from controller import config  # noqa: PLC0415 - keep --help fast

    try:
        loaded = config.load(config_path, cli=main, required=config_path is not None)
    except config.ConfigError as exc:
        if not ctx.meta.get(HELP_ASKED):
            raise click.UsageError(str(exc)) from None
        # `<command> --help` answers; were "-h" an option's value, the body still stops
        ctx.meta[_CONFIG_ERROR] = str(exc)
        return
    ctx.default_map = dict(loaded.defaults)
    ctx.obj = loaded
