"""`patchctl jobs`: the jobs, newest first; sub-commands act on one job."""

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
@click.option(
    "--state", "job_state", default=None, help="Only jobs in this state (pending, failed, ...)."
)
@json_option
@click.pass_context
def jobs(
    ctx: click.Context,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    job_state: str | None,
    as_json: bool,
) -> None:
    """Jobs, newest first (at most 200; --server: from a running service); END_REASON says
    why the controller ended a job (timed-out, no-agent, not-installable, re-enrolled)."""
    if ctx.invoked_subcommand is not None:
        return
    from controller.runtime import status  # noqa: PLC0415 - keep --help fast

    if server:
        rows = remote_rows(
            server,
            "/api/v1/jobs",
            "jobs",
            ca_file=ca_file,
            params={"tenant": tenant, "state": job_state},
        )
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            rows = status.list_jobs(conn, tenant=tenant, state=job_state)
    print_listing(
        rows,
        ("id", "tenant", "kind", "state", "end_reason", "patch_ids", "window_key", "created_at"),
        as_json,
    )


def register(main: click.Group) -> None:
    from controller.cli import operations  # noqa: PLC0415 - loaded with this group only

    operations.add_sub_commands(jobs)
    main.add_command(jobs)
