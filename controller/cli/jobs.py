"""`patchctl jobs`: the jobs, newest first; sub-commands act on one job."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from controller.cli import remote
from controller.cli.common import check_tenant, fail, json_option, print_json
from controller.cli.listing import (
    Column,
    cell,
    field,
    limit_option,
    print_listing,
    remote_page,
    results_cell,
)
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options

COLUMNS: tuple[Column, ...] = (
    ("ID", field("id")),
    ("DEVICE", field("deviceName")),
    ("TENANT", field("tenant")),
    ("KIND", field("kind")),
    ("STATE", field("state")),
    ("END REASON", field("endReason")),
    ("PATCHES", field("patchIds")),
    ("RESULTS", results_cell),
    ("WINDOW", field("windowKey")),
    ("CREATED", field("createdAt")),
)


def _job_state(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A job state (`core.observed.JobState`: read when the option is given, so that `--help`
    imports no core), else a usage error listing them (exit 2)."""
    if value is None:
        return None
    from controller.core.observed import JobState  # noqa: PLC0415 - keep --help fast

    states = [state.value for state in JobState]
    if value not in states:
        raise click.BadParameter(f"{value!r} is not a job state: one of {', '.join(states)}")
    return value


@click.group(invoke_without_command=True)
@store_options
@server_options
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant (and its clients)."
)
@click.option(
    "--state",
    "job_state",
    callback=_job_state,
    default=None,
    help="Only jobs in this state (pending, failed, ...).",
)
@limit_option
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
    limit: int,
    as_json: bool,
) -> None:
    """Jobs, newest first, with their device and per-patch results (--server: from a running
    service, scoped to the read token). END REASON says why the controller ended a job
    (timed-out, no-agent, not-installable, re-enrolled); WINDOW is the PatchWindow and its
    occurrence start in UTC. `patchctl jobs show ID` prints one job with its output."""
    if ctx.invoked_subcommand is not None:
        return
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast

    if server:
        page = remote_page(
            server,
            "/api/v1/jobs",
            "jobs",
            ca_file=ca_file,
            params={"tenant": tenant, "state": job_state, "limit": limit},
        )
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            page = listings.jobs(conn, scope=tenant, state=job_state, limit=limit)
    print_listing(page, COLUMNS, as_json=as_json, noun="jobs", limit=limit)


@jobs.command("show")
@click.argument("job_id", metavar="ID")
@store_options
@server_options
@json_option
def show(
    job_id: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """One job: its device, kind, state, patches with their per-patch results and reasons, the
    window occurrence, the agent's events and its last output (secrets masked).

    With --server, from a running service (`GET /api/v1/jobs/{id}`): a job outside the read
    token's tenant answers 404 like one that does not exist. Exit 0, or 2 when there is no such
    job (or on usage and connection errors)."""
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast

    found: dict[str, Any] | None
    if server:
        found = remote.get(server, f"/api/v1/jobs/{quote(job_id, safe='')}", ca_file=ca_file)
    else:
        with open_store_or_fail(db_url, state_dir).read() as conn:
            found = listings.job(conn, job_id, scope=None)
        if found is None:
            fail(f"no job {job_id!r}; `patchctl jobs` lists them")
            return
    if as_json:
        print_json(found)
        return
    for line in job_lines(found):
        click.echo(line)


def job_lines(job: dict[str, Any]) -> list[str]:
    """The text form of `patchctl jobs show` (a job in the read API's shape)."""
    from controller.core.ids import WindowOccurrence  # noqa: PLC0415 - keep --help fast

    ended = f" ({job['endReason']} from {job.get('endState')})" if job.get("endReason") else ""
    slot = WindowOccurrence.parse(job.get("windowKey"))
    window, occurrence = (slot.window, slot.occurrence) if slot is not None else ("", "")
    flag = job.get("rebootRequired")
    reboot = "unknown" if flag is None else ("required" if flag else "not required")
    lines = [
        f"job {job['id']}",
        f"  device    {job.get('tenant')}/{job.get('deviceName') or '?'} ({job.get('deviceId')})",
        f"  kind      {job.get('kind')}, state {job.get('state')}{ended}",
        f"  patches   {', '.join(_texts(job.get('patchIds'))) or '-'}",
        f"  window    {window or '-'}"
        + (f", occurrence starting {occurrence} (UTC)" if occurrence else ""),
        f"  revision  {job.get('revision')}",
        f"  reboot    {reboot}",
    ]
    lines.extend(
        f"  {label:<9} {cell(job.get(key))}"
        for label, key in (
            ("created", "createdAt"),
            ("deadline", "deadline"),
            ("delivered", "deliveredAt"),
            ("started", "startedAt"),
            ("finished", "finishedAt"),
        )
        if job.get(key)
    )
    results = job.get("results")
    results = results if isinstance(results, dict) else {}  # any stored value renders
    lines.append("results:" if results else "results: none reported yet")
    for patch, entry in results.items():
        outcome = entry if isinstance(entry, dict) else {}
        reason = outcome.get("reason")
        lines.append(
            f"  {patch:<24} {outcome.get('result') or '?'}" + (f"  {reason}" if reason else "")
        )
    events = [e for e in job.get("events") or [] if isinstance(e, dict)]
    lines.append("events:" if events else "events: none")
    lines.extend(f"  {cell(e.get('receivedAt'))}  {e.get('state')}" for e in events)
    output = job.get("output")
    lines.append("output:" if output else "output: none")
    if output:
        lines.extend(f"  {line}" for line in str(output).splitlines())
    return lines


def _texts(value: Any) -> list[str]:
    """A stored list as text items; anything else (a damaged row) as nothing."""
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


def register(main: click.Group) -> None:
    from controller.cli import operations  # noqa: PLC0415 - loaded with this group only

    operations.add_sub_commands(jobs)
    main.add_command(jobs)
