"""`patchctl devices`: the enrolled devices; sub-commands act on one device."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.common import check_tenant, json_option
from controller.cli.listing import Column, field, limit_option, print_listing, remote_page
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options

COLUMNS: tuple[Column, ...] = (
    ("TENANT", field("tenant")),
    ("NAME", field("name")),
    ("OS", lambda row: " ".join(p for p in (row.get("osName"), row.get("osVersion")) if p)),
    ("ROLE", field("role")),
    ("AGENT", lambda row: "online" if row.get("online") else "offline"),
    ("LAST SEEN", field("lastSeen")),
    ("LAST SCAN", field("lastScanAt")),
    ("REBOOT", field("rebootRequired")),
)


@click.group(invoke_without_command=True)
@store_options
@server_options
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant (and its clients)."
)
@limit_option
@json_option
@click.pass_context
def devices(
    ctx: click.Context,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Enrolled devices by tenant and name: OS, role, online or offline (checked in within two
    poll intervals, the planner's rule), last seen and last scan (UTC), reboot pending.

    With --server, the same rows from a running service, scoped to the read token; --json
    prints the read API's rows (camelCase) in both cases."""
    if ctx.invoked_subcommand is not None:
        return
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast
    from controller.runtime.settings import system_clock  # noqa: PLC0415

    if server:
        page = remote_page(
            server,
            "/api/v1/devices",
            "devices",
            ca_file=ca_file,
            params={"tenant": tenant, "limit": limit},
        )
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            page = listings.devices(conn, scope=tenant, now=system_clock(), limit=limit)
    print_listing(page, COLUMNS, as_json=as_json, noun="devices", limit=limit)


def register(main: click.Group) -> None:
    from controller.cli import operations  # noqa: PLC0415 - loaded with this group only

    operations.add_sub_commands(devices)
    main.add_command(devices)
