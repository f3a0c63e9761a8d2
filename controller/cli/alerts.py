"""`patchctl alerts`: the alert browser; sub-commands act on one alert.

The filters are the read API's query parameters (`GET /api/v1/alerts`, docs/api.md), so a
command with `--server` asks the service exactly what it would ask the local store
(`controller.store.alert_store.list_alerts`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from controller.cli.common import check_tenant, json_option
from controller.cli.listing import Column, field, limit_option, print_listing, remote_page
from controller.cli.remote import server_options
from controller.cli.serve import open_store_or_fail, store_options
from controller.core import instants
from controller.vocabularies import AlertSeverity, AlertState, EventType

DEFAULT_COLUMNS = ("created_at", "severity", "kind", "tenant", "message")
COLUMNS = {  # name: what it shows (for --help and the error listing them)
    "id": "the alert's number (GET /api/v1/alerts/{id}, the dashboard's /alerts/{id})",
    "created_at": "when it was raised (UTC)",
    "severity": "info, warning or critical",
    "kind": "InstallFailed, RebootPending, ...",
    "tenant": "the tenant it concerns (empty: every tenant)",
    "device": "the device's name (its id when the name is not shown)",
    "state": "open, acknowledged or resolved",
    "message": "what happened",
    "acknowledged_at": "when an operator acknowledged it",
    "acknowledged_by": "who acknowledged it",
    "resolved_at": "when it was resolved",
}


def _column(name: str) -> Column:
    """The table column `name` over a read API row (camelCase)."""
    if name == "device":
        return ("DEVICE", lambda row: row.get("deviceName") or row.get("deviceId"))
    head, *rest = name.split("_")
    return (name.upper(), field(head + "".join(part.title() for part in rest)))


ALL_COLUMNS: tuple[Column, ...] = tuple(_column(name) for name in COLUMNS)


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return instants.parse_instant(value, now=datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _columns(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_COLUMNS
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or not names:
        shown = ", ".join(repr(n) for n in unknown) or "none"
        raise click.BadParameter(f"unknown column(s) {shown}; the columns are {', '.join(COLUMNS)}")
    return names


def _choices(vocabulary: type[Any]) -> click.Choice[str]:
    return click.Choice([member.value for member in vocabulary])


@click.group(invoke_without_command=True)
@store_options
@server_options
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant (and its clients)."
)
@click.option(
    "--type",
    "kinds",
    multiple=True,
    type=_choices(EventType),
    metavar="KIND",
    help="Only alerts of this kind (InstallFailed, RebootPending, PolicyInvalid, ...); "
    "repeat for several.",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    type=_choices(AlertSeverity),
    help="Only this severity; repeat for several.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=_choices(AlertState),
    help="open (neither acknowledged nor resolved), acknowledged (seen, not resolved) or "
    "resolved; repeat for several.",
)
@click.option("--device", default=None, metavar="NAME|ID", help="Only alerts about this device.")
@click.option(
    "--since",
    callback=_instant,
    default=None,
    metavar="WHEN",
    help="Only alerts raised at or after WHEN: a date (2026-12-01, midnight UTC), an ISO 8601 "
    "time (UTC unless it has an offset) or a duration ago (30m, 24h, 7d).",
)
@click.option(
    "--until",
    callback=_instant,
    default=None,
    metavar="WHEN",
    help="Only alerts raised before WHEN (same forms as --since).",
)
@limit_option
@click.option(
    "--columns",
    callback=_columns,
    default=None,
    metavar="A,B,...",
    help=f"The table's columns, in order (default: {','.join(DEFAULT_COLUMNS)}); any of "
    f"{', '.join(COLUMNS)}. --json prints every field.",
)
@json_option
@click.pass_context
def alerts(
    ctx: click.Context,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    kinds: tuple[str, ...],
    severities: tuple[str, ...],
    states: tuple[str, ...],
    device: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    columns: tuple[str, ...],
    as_json: bool,
) -> None:
    """Alerts, newest first (--server: from a running service, scoped to the token), kept by the
    filters: several values of one filter are alternatives, different filters all apply.
    Alerts that concern every tenant (PolicyInvalid) show under every --tenant. Exit 0, also
    when nothing matches; 2 on a bad option (--until not after --since included) or an
    unreachable service."""
    if ctx.invoked_subcommand is not None:
        return
    if not instants.ordered(since, until):  # the read API's rule: refused here in both modes
        raise click.BadParameter("must be after --since", ctx=ctx, param_hint="'--until'")
    from controller.runtime import listings  # noqa: PLC0415 - keep --help fast
    from controller.store import alerts as alert_store  # noqa: PLC0415

    if server:
        params = {
            "tenant": tenant,
            "type": list(kinds) or None,
            "severity": list(severities) or None,
            "state": list(states) or None,
            "device": device,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "limit": limit,
        }
        page = remote_page(server, "/api/v1/alerts", "alerts", ca_file=ca_file, params=params)
    else:
        filters = alert_store.AlertFilter(
            kinds=tuple(map(EventType, kinds)),
            severities=tuple(map(AlertSeverity, severities)),
            states=tuple(map(AlertState, states)),
            device=device,
            since=since,
            until=until,
        )
        with open_store_or_fail(db_url, state_dir).read() as conn:
            page = listings.alerts(conn, scope=tenant, filters=filters, limit=limit)
    shown = tuple(_column(name) for name in columns)
    print_listing(page, shown, as_json=as_json, noun="alerts", limit=limit)


def register(main: click.Group) -> None:
    from controller.cli import operations  # noqa: PLC0415 - loaded with this group only

    operations.add_sub_commands(alerts)
    main.add_command(alerts)
