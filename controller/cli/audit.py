"""`patchctl audit`: the audit trail, synced from the branch first, as a table or JSON.

The access policy judges every approving change (`--access-policy`, see `cli.common`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from controller.cli import remote
from controller.cli.common import (
    access_policy_option,
    check_tenant,
    enforced_source_options,
    fail,
    json_option,
    load_access_or_fail,
    print_json,
    time_value,
)
from controller.cli.listing import cell
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options
from controller.core.revisions import Revision
from controller.runtime.settings import system_clock

F = TypeVar("F", bound=Callable[..., Any])
SUMMARY_WIDTH = 100


@click.command("audit")
@click.option(
    "--since", callback=time_value, default=None, metavar="DATE", help="Only entries from then on."
)
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant (and its clients)."
)
@click.option(
    "--patch",
    default=None,
    metavar="ID",
    help="Only what concerns this patch: approvals granting or revoking it, the jobs that "
    "carried it (per revision, with their results) and its alerts.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="The newest N entries (with --server at most 5000).",
)
@click.option("--no-sync", is_flag=True, help="Show the trail as recorded; do not read git.")
@enforced_source_options
@store_options
@server_options
@access_policy_option
@json_option
def audit_command(
    since: datetime | None,
    tenant: str | None,
    patch: str | None,
    limit: int,
    no_sync: bool,
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    access_policy: Path | None,
    as_json: bool,
) -> None:
    """The audit trail, oldest first: who changed which policy object in which commit and pull
    request, the signature and the access verdict, and what the controller did (jobs issued,
    with the revision; with --patch also their results and alerts).

    The commits new since the last sync are read from --repo first (so it works without
    `serve`); when the repository cannot be read, the trail is shown as last recorded, with
    its age. With --server, the running service answers (`GET /api/v1/audit`, scoped to the
    read token; its loop keeps the trail synced, so --repo, --branch and --no-sync are not
    used). Exit 0, or 2 on usage, database or connection errors.
    """
    now = system_clock()
    if server:
        if limit > REMOTE_LIMIT:
            fail(f"--limit {limit}: the read API answers at most {REMOTE_LIMIT} entries")
        params = {
            "since": since.isoformat() if since else None,
            "tenant": tenant,
            "patch": patch,
            "limit": limit,
        }
        answer = remote.get(server, "/api/v1/audit", ca_file=ca_file, params=params)
        document = {"trail": answer["trail"], "events": answer["events"]}
        freshness = _recorded(document["trail"], now=now)
    else:
        document, freshness = _local_trail(
            since, tenant, patch, limit, no_sync, repo, branch, db_url, state_dir, access_policy
        )
    if as_json:
        print_json(document)
        return
    click.echo(freshness, err=True)
    _table(document["events"])


REMOTE_LIMIT = 5000


def _local_trail(
    since: datetime | None,
    tenant: str | None,
    patch: str | None,
    limit: int,
    no_sync: bool,
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    access_policy: Path | None,
) -> tuple[dict[str, Any], str]:
    from controller.runtime import audit, listings  # noqa: PLC0415 - keep --help fast

    store = open_store_or_fail(db_url, state_dir)
    now = system_clock()
    freshness = ""
    if not no_sync:
        trail = audit.AuditTrail(
            store=store,
            repo=repo,
            branch=branch,
            state_dir=state_dir,
            access=load_access_or_fail(access_policy),
        )
        try:
            synced = trail.sync(now=now, fetch=True)
            freshness = f"synced {synced.branch}@sha1:{synced.tip} ({synced.recorded} new)"
        except audit.AuditUnavailableError as exc:
            click.echo(f"patchctl: audit trail not synced: {exc}", err=True)
    with store.read() as conn:
        document = listings.audit_trail(
            conn, scope=tenant, since=since, patch=patch, limit=limit, lineage=True, on_host=True
        )
    return document, freshness or _recorded(document["trail"], now=now)


def _recorded(trail: dict[str, Any], *, now: datetime) -> str:
    if not trail:
        return "the audit trail was never synced (run `patchctl audit --repo R` or `serve`)"
    parts = []
    for branch, cursor in sorted(trail.items()):
        synced = cursor.get("syncedAt")
        age = (
            f"{int((now - datetime.fromisoformat(synced)).total_seconds() // 60)} min ago"
            if synced
            else "?"
        )
        parts.append(f"{branch}@sha1:{cursor.get('tip')} recorded {age}")
    return "trail as recorded: " + "; ".join(parts)


def _table(entries: list[dict[str, Any]]) -> None:
    columns = ("at", "type", "tenant", "actor", "object", "revision", "summary")
    rows = [
        {
            "at": cell(entry["at"]),
            "type": entry["type"],
            "tenant": entry.get("tenant") or "*",
            "actor": entry.get("actor") or "",
            "object": entry.get("object") or "",
            "revision": _short(entry.get("revision")),
            "summary": _clip(entry.get("summary") or ""),
        }
        for entry in entries
    ]
    widths = {c: max([len(c)] + [len(row[c]) for row in rows]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    if not rows:
        click.echo("(no entries)")


def _short(revision: str | None) -> str:
    """`main@sha1:<40 hex>` → `main@3f1c5e2a9b0d`."""
    parsed = Revision.parse(revision)
    return parsed.short() if parsed else (revision or "")


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 3] + "..."


def register(main: click.Group) -> None:
    main.add_command(audit_command)
