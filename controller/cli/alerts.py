"""`patchctl alerts`: the alert browser; sub-commands act on one alert."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.common import json_option
from controller.cli.listing import Column, field, limit_option, print_listing, remote_page
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options

COLUMNS: tuple[Column, ...] = (
    ("CREATED", field("createdAt")),
    ("SEVERITY", field("severity")),
    ("KIND", field("kind")),
    ("TENANT", field("tenant")),
    ("MESSAGE", field("message")),
)


@click.group(invoke_without_command=True)
@store_options
@server_options
@click.option("--tenant", default=None, help="Only this tenant (and its clients).")
@limit_option
@json_option
@click.pass_context
def alerts(
    ctx: click.Context,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Alerts, newest first (--server: from a running service, scoped to the read token)."""
    if ctx.invoked_subcommand is not None:
        return
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast

    if server:
        page = remote_page(
            server,
            "/api/v1/alerts",
            "alerts",
            ca_file=ca_file,
            params={"tenant": tenant, "limit": limit},
        )
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            page = listings.alerts(conn, scope=tenant, limit=limit)
    print_listing(page, COLUMNS, as_json=as_json, noun="alerts", limit=limit)


def register(main: click.Group) -> None:
    main.add_command(alerts)
