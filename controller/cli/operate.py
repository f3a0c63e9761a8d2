"""Operator commands: `reconcile`, `explain`, `status`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from controller.cli import remote
from controller.cli.common import (
    EXIT_NO,
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
from controller.core.conditions import ReconcileResult
from controller.runtime.settings import system_clock

if TYPE_CHECKING:
    from controller.runtime.leadership import Leadership
    from controller.runtime.reconcile import Reconciler
    from controller.store import Store


now_option = click.option(
    "--now",
    callback=time_value,
    default=None,
    metavar="ISO",
    help="Reason as if it were this instant (UTC unless an offset is given). Default: the clock.",
)


def _reconciler(
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    now: datetime | None,
    access_policy: Path | None = None,
    *,
    create: bool = False,
    store: Store | None = None,
) -> Reconciler:
    from controller.runtime.reconcile import PolicySource, Reconciler  # noqa: PLC0415 - keep --help fast

    store = store or open_store_or_fail(db_url, state_dir, create=create)
    clock = (lambda: now) if now is not None else system_clock
    return Reconciler(
        store=store,
        source=PolicySource(repo, branch, state_dir),
        clock=clock,
        access=load_access_or_fail(access_policy),
    )


def _lead_or_fail(store: Store) -> Leadership:
    """Hold the reconciler lease for one pass (renewed meanwhile), or exit 2 naming the
    `serve` replica that holds it."""
    from controller.runtime.leadership import Leadership  # noqa: PLC0415 - keep --help fast
    from controller.store import leases  # noqa: PLC0415

    leadership = Leadership(store)
    if leadership.step():
        leadership.start()
        return leadership
    with store.read() as conn:
        lease = leases.read(conn)
    holder = f"{lease.holder} (epoch {lease.epoch})" if lease else "another process"
    fail(
        f"the reconciler lease is held by {holder}: a running `patchctl serve` reconciles this "
        "database; push a commit or call its webhook to start a pass, or stop it first"
    )
    raise AssertionError  # unreachable: fail() exits


@click.command()
@enforced_source_options
@store_options
@now_option
@access_policy_option
@json_option
def reconcile(
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    now: datetime | None,
    access_policy: Path | None,
    as_json: bool,
) -> None:
    """Run one reconcile pass: fetch the policy, plan against the store, apply, save status.

    A revision that does not validate is recorded (lastAttemptedRevision, a PolicyInvalid alert)
    and the last valid revision keeps being enforced. Exit 0 when the head revision was applied,
    1 when it was not (invalid policy, unreachable source), 2 on usage or database errors, or
    when a running `serve` holds the reconciler lease (its loop reconciles; two passes at once
    would race).
    """
    leadership = _lead_or_fail(open_store_or_fail(db_url, state_dir, create=True))
    try:
        outcome = _reconciler(
            repo, branch, db_url, state_dir, now, access_policy, store=leadership.store
        ).reconcile()
    finally:
        leadership.stop()
    if as_json:
        print_json(outcome.as_dict())
    else:
        click.echo(
            f"{outcome.result}: applied {outcome.applied_revision or '-'} "
            f"(attempted {outcome.attempted_revision or '-'}) in {outcome.duration_ms} ms"
        )
        for key, value in outcome.counts.items():
            click.echo(f"  {key:<20} {value}")
        for error in outcome.errors:
            click.echo(f"  {error}", err=True)
    raise SystemExit(0 if outcome.result == ReconcileResult.APPLIED else EXIT_NO)


@click.command()
@click.argument("device")
@click.option(
    "--tenant",
    callback=check_tenant,
    default=None,
    help="Tenant of the device, when its name is not unique.",
)
@enforced_source_options
@store_options
@server_options
@now_option
@json_option
def explain(
    device: str,
    tenant: str | None,
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    now: datetime | None,
    as_json: bool,
) -> None:
    """Why each patch of DEVICE (name or id) is or is not required, approved and installable,
    and when it will be installed (window times on the window's own clock, then UTC), or why
    it will not be (a gateway is never patched; no window targets the device or has an
    occurrence ahead). Uses the branch head if it validates, else the last valid revision.

    With --server, the running service answers (`GET /api/v1/devices/DEVICE/explain`) under
    the revision it enforces at its own clock, scoped to the read token (--repo and --branch
    are not used, --now is refused). Exit 0, or 2 when the device is unknown or ambiguous (use
    --tenant or its id)."""
    if server and now is not None:
        fail("--now works on the controller's own database only; a service answers at its clock")
    if server:
        answer = remote.get(
            server,
            f"/api/v1/devices/{quote(device, safe='')}/explain",
            ca_file=ca_file,
            params={"tenant": tenant},
        )
    else:
        answer = _explain_locally(device, tenant, repo, branch, db_url, state_dir, now)
    if as_json:
        print_json(answer)
        return
    for line in explanation_lines(answer):
        click.echo(line)


def _explain_locally(
    device: str,
    tenant: str | None,
    repo: str,
    branch: str,
    db_url: str | None,
    state_dir: Path,
    now: datetime | None,
) -> dict[str, Any]:
    from controller.runtime import explaining  # noqa: PLC0415 - keep --help fast

    reconciler = _reconciler(repo, branch, db_url, state_dir, now)
    moment = reconciler.clock()
    _, loaded = reconciler.fetch_and_load()
    desired = loaded.state or reconciler.enforced_state()
    if desired is None:
        fail("no valid policy revision to explain against; run `patchctl validate`")
        raise AssertionError  # unreachable: fail() exits
    with reconciler.store.read() as conn:
        try:
            return explaining.explain_device(conn, desired, device, scope=tenant, now=moment)
        except explaining.DeviceNotFoundError as exc:
            fail(str(exc))
            raise AssertionError from None  # unreachable: fail() exits


def explanation_lines(answer: dict[str, Any]) -> list[str]:
    """The text form of `patchctl explain` (from `runtime.explaining.explanation_json`, so
    that the local and the remote answer print the same)."""
    d = answer["device"]
    os_text = " ".join(p for p in (d.get("os"), d.get("osName"), d.get("osVersion")) if p)
    scanned = cell(answer.get("scannedAt")) or "never"
    lines = [
        (
            f"{d['tenant']}/{d['name']} ({d['id']}): {os_text or 'unknown OS'}, role "
            f"{d.get('role') or '-'}, {'online' if answer.get('online') else 'offline'}"
        ),
        f"policy {answer.get('revision') or '-'}; last scan {scanned}",
        "next install opportunity: "
        + (answer.get("nextWindow") or answer.get("unscheduled") or "none"),
        "targeted by: " + (", ".join(answer.get("policies") or []) or "nothing"),
    ]
    lines.extend(f"job: {sentence}" for sentence in answer.get("jobs") or [])
    lines.extend(
        f"  {patch['id']:<24} {patch.get('state') or patch['status']:<9} {patch['verdict']}"
        for patch in answer.get("patches") or []
    )
    return lines


@click.command("status")
@store_options
@server_options
@click.option(
    "--tenant", callback=check_tenant, default=None, help="Only this tenant (and its clients)."
)
@json_option
def status_command(
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Compliance per baseline, pending approvals, patch status of the last 30 days, the applied
    and attempted revisions, conditions, recent reconciles and agents online.

    With --server, the same from a running service, scoped to the read token's tenant (policy
    errors are then counted, not listed)."""
    if server:
        report = remote.get(server, "/api/v1/status", ca_file=ca_file, params={"tenant": tenant})
    else:
        from controller.runtime import status  # noqa: PLC0415 - keep --help fast

        store = open_store_or_fail(db_url, state_dir)
        with store.read() as conn:
            report = status.summary(conn, now=system_clock(), tenant=tenant)
    if as_json:
        print_json(report)
        return
    for line in status_lines(report):
        click.echo(line)


def status_lines(report: dict[str, Any]) -> list[str]:
    """The text form of `patchctl status` (`status.summary`, whose stored parts are already
    reduced to the expected shapes)."""
    source = report["source"]
    lines = [
        f"applied   {source.get('lastAppliedRevision') or '-'}",
        f"attempted {source.get('lastAttemptedRevision') or '-'}",
    ]
    lease = report.get("leader")
    if lease is not None:  # a service shows no holder: it names a host
        state = "until" if lease["valid"] else "expired"
        asked = "the replica asked" if lease.get("thisReplica") else "another replica"
        holder = lease.get("holder") or asked
        lines.append(f"leader    {holder} (epoch {lease['epoch']}, {state} {lease['expiresAt']})")
    lines.extend(
        f"  {c.get('type', '?'):<15} {c.get('status', '?'):<8} "
        f"{c.get('reason', '')}: {c.get('message', '')}"
        for c in report["conditions"]
    )
    lines.append("compliance:")
    for baseline, states in report["compliance"].items():
        total = sum(states.values())
        compliant = states.get("compliant", 0)
        share = 100 * compliant / total if total else 0
        details = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        lines.append(f"  {baseline:<40} {share:5.1f}%  ({details})")
    lines.append(f"pending approvals: {report['pendingApprovals']}")
    ps = report["patchStatus"]
    lines.append(
        f"patch status (30 days): installed {ps['installed']}, failed {ps['failed']}, "
        f"pending {ps['pending']}"
    )
    agents = report["agents"]
    lines.append(
        f"agents: {agents['devices']} devices, {agents['online']} online, "
        f"{agents['offline']} offline"
    )
    for key, window in report["nextWindows"].items():
        state = "open now" if window.get("open") else f"next {window.get('start') or '-'}"
        lines.append(f"  window {key:<36} {state}")
    channels = report.get("notifications") or []
    if channels:
        lines.append("notification channels:")
        lines.extend(f"  {_channel_line(channel)}" for channel in channels)
    return lines


def _channel_line(state: dict[str, Any]) -> str:
    """`webhook:hooks.example:1a2b  delivered 41, queued 3, dropped 0; failing (2 attempts):
    <last error> at <when>, next attempt <when>` (`runtime.status.notification_channels`)."""
    text = (
        f"{state.get('channel')}  delivered {state.get('delivered') or 0}, "
        f"queued {state.get('queued') or 0}, dropped {state.get('dropped') or 0}"
    )
    failures = state.get("failures") or 0
    if failures:
        text += f"; failing ({failures} attempt(s)): {state.get('lastError') or '?'}"
        text += f" at {state.get('lastErrorAt') or '?'}"
        if state.get("nextAttempt"):
            text += f", next attempt {state['nextAttempt']}"
    return text


def register(main: click.Group) -> None:
    for command in (reconcile, explain, status_command):
        main.add_command(command)


__all__ = ["EXIT_NO", "register"]
