"""`patchctl alerts`: the alert browser; sub-commands act on one alert."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.common import json_option
from controller.cli.listing import print_listing, remote_rows
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options


@click.group(invoke_without_command=True)
@store_options
@server_options
@click.option("--tenant", default=None, help="Only this tenant (and its clients).")
@json_option
@click.pass_context
def alerts(
    ctx: click.Context,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Alerts, newest first (at most 200; --server: from a running service)."""
    if ctx.invoked_subcommand is not None:
        return
    from controller.runtime import status  # noqa: PLC0415 - keep --help fast

    if server:
        rows = remote_rows(
            server, "/api/v1/alerts", "alerts", ca_file=ca_file, params={"tenant": tenant}
        )
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            rows = status.list_alerts(conn, tenant=tenant)
    print_listing(rows, ("created_at", "severity", "kind", "tenant", "message"), as_json)


def register(main: click.Group) -> None:
    from controller.cli import operations  # noqa: PLC0415 - loaded with this group only

    operations.add_sub_commands(alerts)
    main.add_command(alerts)
