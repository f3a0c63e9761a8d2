"""`patchctl plan`: what merging a pull request's head would change, for a PR comment."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from controller.cli.common import EXIT_NO, fail, source_options
from controller.cli.operate import now_option
from controller.cli.serve import database_url, store_options
from controller.core.observed import ObservedState
from controller.core.projection import Projection, project
from controller.runtime.settings import DATABASE_FILE, system_clock
from controller.sources import repository

MARKDOWN_LIMIT = 60_000
DEVICE_NAMES_SHOWN = 5


@click.command("plan")
@click.option("--base", required=True, help="The revision merged into (e.g. origin/main).")
@click.option("--head", required=True, help="The pull request's revision (e.g. HEAD).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the head changes any policy object.")
@source_options
@store_options
@now_option
def plan_command(
    base: str,
    head: str,
    fmt: str,
    exit_code: bool,
    repo: str,
    branch: str | None,
    db_url: str | None,
    state_dir: Path,
    now: datetime | None,
) -> None:
    """Show what merging HEAD into BASE would do: objects changed, patches newly approved or
    revoked per device, the window each device will be patched in next, compliance projected
    after that window (before/after), and warnings.

    The fleet is read from the controller's store (--db, or the SQLite file in --state-dir) when
    there is one; without it only the policy changes are shown. Markdown stays under 60,000
    characters, so it fits a PR comment. Exit 0, or 1 with --exit-code when something changed,
    or 2 when a revision cannot be read; an invalid head prints its errors and exits 1.
    """
    del branch  # both revisions are explicit
    loaded = {}
    for name, rev in (("base", base), ("head", head)):
        try:
            result = repository.load(repo, state_dir=state_dir, rev=rev)
        except repository.SourceError as exc:
            fail(str(exc))
            return
        if result.result.state is None:
            click.echo(f"{name} {result.revision} does not validate:")
            for problem in result.result.errors:
                click.echo(f"  {problem}")
            raise SystemExit(EXIT_NO)
        loaded[name] = result.result.state
    moment = now or system_clock()
    observed, fleet_known = _fleet(db_url, state_dir, moment)
    projection = project(loaded["base"], loaded["head"], observed, now=moment)
    if fmt == "json":
        click.echo(json.dumps(projection_json(projection, fleet_known=fleet_known), indent=2))
    else:
        click.echo(render_markdown(projection, fleet_known=fleet_known))
    raise SystemExit(EXIT_NO if exit_code and projection.has_changes else 0)


def _fleet(db_url: str | None, state_dir: Path, now: datetime) -> tuple[ObservedState, bool]:
    if db_url is None and not (state_dir / DATABASE_FILE).is_file():
        return ObservedState(), False
    from controller.runtime import observe  # noqa: PLC0415 - only with a store
    from controller.store import StoreError, open_store  # noqa: PLC0415

    try:
        store = open_store(database_url(db_url, state_dir), migrate=False)
        with store.read() as conn:
            return observe.observe(conn, now=now), True
    except StoreError as exc:
        fail(str(exc))
        raise


def projection_json(projection: Projection, *, fleet_known: bool) -> dict[str, Any]:
    return {
        "base": projection.base_revision,
        "head": projection.head_revision,
        "changed": projection.has_changes,
        "changes": [
            {"object": str(c.key), "event": c.event.value, "action": c.action.value}
            for c in projection.changes
        ],
        "fleetKnown": fleet_known,
        "devices": [
            {
                "id": d.device_id,
                "tenant": d.tenant,
                "name": d.name,
                "granted": list(d.granted),
                "revoked": list(d.revoked),
                "nextWindow": d.next_window,
                "nextWindowStart": d.next_window_start.isoformat() if d.next_window_start else None,
            }
            for d in projection.devices
        ],
        "complianceBefore": projection.compliance_before,
        "complianceAfter": projection.compliance_after,
        "pendingApprovals": {
            "before": projection.pending_before,
            "after": projection.pending_after,
        },
        "warnings": list(projection.warnings),
    }


def render_markdown(projection: Projection, *, fleet_known: bool) -> str:
    """A PR comment: summary first, details after, cut to stay under the comment limit."""
    lines = [
        f"### patchctl plan: `{projection.base_revision}` → `{projection.head_revision}`",
        "",
    ]
    if not projection.has_changes:
        lines.append("No policy object changes.")
    else:
        lines += ["| object | change |", "|---|---|"]
        lines += [f"| `{c.key}` | {c.event.value} |" for c in projection.changes]
    lines.append("")
    if not fleet_known:
        lines.append("_Fleet state not available here: device effects are not shown._")
    else:
        lines += _device_section(projection)
        lines += _compliance_section(projection)
    if projection.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in projection.warnings]
    text = "\n".join(lines) + "\n"
    if len(text) > MARKDOWN_LIMIT:
        cut = text[: MARKDOWN_LIMIT - 200].rsplit("\n", 1)[0]
        text = cut + "\n\n_… output truncated; run `patchctl plan --format json` for all of it._\n"
    return text


def _device_section(projection: Projection) -> list[str]:
    if not projection.devices:
        return ["No device gains or loses an installable patch."]
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...], str | None], list[str]] = {}
    for d in projection.devices:
        groups.setdefault((d.tenant, d.granted, d.revoked, d.next_window), []).append(d.name)
    lines = [
        f"**{len(projection.devices)} device(s) affected**",
        "",
        "| tenant | newly installable | no longer installable | devices | next window |",
        "|---|---|---|---|---|",
    ]
    for (tenant, granted, revoked, window), names in sorted(groups.items(), key=lambda i: i[0][0]):
        shown = ", ".join(names[:DEVICE_NAMES_SHOWN])
        more = (
            f" and {len(names) - DEVICE_NAMES_SHOWN} more"
            if len(names) > DEVICE_NAMES_SHOWN
            else ""
        )
        lines.append(
            f"| {tenant} | {', '.join(granted) or '-'} | {', '.join(revoked) or '-'} "
            f"| {len(names)}: {shown}{more} | {window or 'none'} |"
        )
    return lines


def _compliance_section(projection: Projection) -> list[str]:
    lines = [
        "",
        "**Compliance after the next window** (if every installable patch installs)",
        "",
        "| baseline | before | after |",
        "|---|---|---|",
    ]
    baselines = sorted(projection.compliance_before.keys() | projection.compliance_after.keys())
    lines.extend(
        f"| {baseline} | {_share(projection.compliance_before.get(baseline, {}))} "
        f"| {_share(projection.compliance_after.get(baseline, {}))} |"
        for baseline in baselines
    )
    lines += [
        "",
        f"Pending approvals: {projection.pending_before} → {projection.pending_after}",
    ]
    return lines


def _share(states: dict[str, int]) -> str:
    total = sum(states.values())
    if not total:
        return "-"
    return f"{100 * states.get('compliant', 0) / total:.0f}% ({states.get('compliant', 0)}/{total})"


def register(main: click.Group) -> None:
    main.add_command(plan_command)
