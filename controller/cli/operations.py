"""Day-2 sub-commands (docs/operations.md): `devices retire|rotate-token`, `jobs cancel|retry`,
`alerts ack|resolve`.

Each works on the local database (the controller host's operator: every tenant, audited as
`local operator <user>`) or, with `--server URL`, through the admin API with the admin token in
`PATCHCTL_TOKEN` (that token's tenant scope, audited as the token). Exit codes: 0 done; 1 no such
object in the scope, or its state does not allow it (the message says why); 2 bad option,
unreachable database or service, or a token that is not allowed.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from controller.cli.common import fail_with, json_option, print_json
from controller.cli.remote import admin_server_options
from controller.cli.serve import open_store_or_fail, store_options

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.store import Connection
    from controller.store import operations as ops

T = TypeVar("T")
RETRY_PICKUP = timedelta(hours=1)  # as the admin API's (`admin_api.RETRY_PICKUP`)

_REASON = click.option("--reason", default="", help="Why; recorded in the audit trail.")


def _where(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """This command's --server/--ca-file/--db, else the ones given to its group
    (`patchctl jobs --server URL cancel ID` works as well as `patchctl jobs cancel ID --server
    URL`)."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    return {key: params.get(key) or parent.get(key) for key in ("server", "ca_file", "db_url")}


def local_operator(reason: str = "") -> ops.Operator:
    """The local operator: every tenant, named by the OS user in the audit trail."""
    from controller.store import operations  # noqa: PLC0415 - keep --help fast

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's numeric user)
        user = "unknown"
    return operations.Operator(actor=f"local operator {user}", scope=None, reason=reason)


def run_local(
    db_url: str | None, state_dir: Path, operation: Callable[[Connection, datetime], T]
) -> T:
    """Run `operation(conn, now)` in one write transaction of the local store; NotFound and
    Refused exit 1 with their message."""
    from controller.store import operations  # noqa: PLC0415

    store = open_store_or_fail(db_url, state_dir)
    try:
        with store.write() as conn:
            return operation(conn, datetime.now(tz=UTC))
    except (operations.NotFound, operations.Refused) as exc:
        fail_with(exc)
    finally:
        store.close()


def run_remote(server: str, path: str, *, ca_file: Path | None, reason: str) -> Any:
    """POST to the admin API; 404 and 409 exit 1, any other refusal exits 2."""
    from controller.cli import remote  # noqa: PLC0415

    return remote.post(server, path, ca_file=ca_file, body={"reason": reason} if reason else {})


def _act(
    ctx: click.Context,
    path: str,
    local: Callable[[Connection, datetime, ops.Operator], dict[str, Any]],
    *,
    server: str | None,
    ca_file: Path | None,
    db_url: str | None,
    state_dir: Path,
    reason: str,
) -> Any:
    """One operation through the admin API (`path`, with --server) or on the local store
    (`local(conn, now, operator)`, which answers in the API's shape): the answer either way."""
    where = _where(ctx, {"server": server, "ca_file": ca_file, "db_url": db_url})
    if where["server"]:
        return run_remote(where["server"], path, ca_file=where["ca_file"], reason=reason)
    who = local_operator(reason)
    return run_local(where["db_url"], state_dir, lambda conn, now: local(conn, now, who))


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in (
        json_option,
        _REASON,
        admin_server_options,
        store_options,
        click.pass_context,
    ):
        func = decorate(func)
    return func


def _emit(value: dict[str, Any], text: str, *, as_json: bool) -> None:
    if as_json:
        print_json(value)
    else:
        click.echo(text)


# --- devices ----------------------------------------------------------------------------------


@click.command()
@click.argument("device")
@_options
def retire(
    ctx: click.Context,
    device: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    reason: str,
    as_json: bool,
) -> None:
    """Retire DEVICE (its name or id): its unfinished jobs are cancelled, its device token is
    revoked, it leaves planning, compliance, status and listings; its jobs, alerts and audit
    trail are kept. Re-enrolling the same hostname brings it back.

    With --server, an admin token in PATCHCTL_TOKEN; otherwise the local database.
    Exit codes: 0 retired, 1 no such device or retired already, 2 usage or I/O error.
    """
    from controller.store import operations  # noqa: PLC0415 - keep --help fast

    def local(conn: Connection, now: datetime, who: ops.Operator) -> dict[str, Any]:
        done = operations.retire_device(conn, device, who=who, now=now)
        return {
            "deviceId": done.device_id,
            "name": done.name,
            "tenant": done.tenant,
            "cancelledJobs": list(done.cancelled_jobs),
        }

    answer = _act(
        ctx, f"/api/v1/devices/{device}/retire", local,
        server=server, ca_file=ca_file, db_url=db_url, state_dir=state_dir, reason=reason,
    )  # fmt: skip
    cancelled = len(answer["cancelledJobs"])
    _emit(
        answer,
        f"retired {answer['name']} ({answer['tenant']}); {cancelled} job(s) cancelled",
        as_json=as_json,
    )


@click.command(name="rotate-token")
@click.argument("device")
@_options
def rotate_token(
    ctx: click.Context,
    device: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    reason: str,
    as_json: bool,
) -> None:
    """Give DEVICE (its name or id) a new device token and print it (shown only this once).
    The old token stops working at once: write the new one to the agent's `token` file (in its
    state directory, /var/lib/patchctl-agent/token by default) and restart the agent, or
    re-enrol the agent (`patchctl-agent enroll`), which also replaces the token. See
    docs/operations.md.

    With --server, an admin token in PATCHCTL_TOKEN; otherwise the local database.
    Exit codes: 0 rotated, 1 no such device or retired, 2 usage or I/O error.
    """
    from controller.store import operations  # noqa: PLC0415 - keep --help fast

    def local(conn: Connection, now: datetime, who: ops.Operator) -> dict[str, Any]:
        done = operations.rotate_device_token(conn, device, who=who, now=now)
        return {
            "deviceId": done.device_id,
            "name": done.name,
            "tokenId": done.token.id,
            "deviceToken": done.token.secret,
        }

    answer = _act(
        ctx, f"/api/v1/devices/{device}/rotate-token", local,
        server=server, ca_file=ca_file, db_url=db_url, state_dir=state_dir, reason=reason,
    )  # fmt: skip
    if as_json:
        print_json(answer)
        return
    click.echo(answer["deviceToken"])
    click.echo(
        f"new device token {answer['tokenId']} for {answer['name']}; the old one no longer "
        "works. It is not shown again.",
        err=True,
    )


# --- jobs -------------------------------------------------------------------------------------


@click.command()
@click.argument("job_id")
@_options
def cancel(
    ctx: click.Context,
    job_id: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    reason: str,
    as_json: bool,
) -> None:
    """Cancel job JOB_ID if the agent has not finished it. A job the agent already started may
    still complete on the device (the controller never connects to devices); the rescan after
    it shows what changed. A cancelled install is not issued again in the same window
    occurrence; a cancelled scan is issued again after an hour.

    With --server, an admin token in PATCHCTL_TOKEN; otherwise the local database.
    Exit codes: 0 cancelled, 1 no such job or finished already, 2 usage or I/O error.
    """
    from controller.store import operations  # noqa: PLC0415 - keep --help fast

    def local(conn: Connection, now: datetime, who: ops.Operator) -> dict[str, Any]:
        was = operations.cancel_job(conn, job_id, who=who, now=now)
        return {"id": job_id, "state": "cancelled", "previousState": was.value}

    answer = _act(
        ctx, f"/api/v1/jobs/{job_id}/cancel", local,
        server=server, ca_file=ca_file, db_url=db_url, state_dir=state_dir, reason=reason,
    )  # fmt: skip
    _emit(answer, f"cancelled {job_id} (was {answer['previousState']})", as_json=as_json)


@click.command()
@click.argument("job_id")
@_options
def retry(
    ctx: click.Context,
    job_id: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
    reason: str,
    as_json: bool,
) -> None:
    """Issue failed or expired job JOB_ID again, now: a new job with the same kind, patches and
    scripts, delivered at the device's next poll even outside a patch window; it expires if the
    agent does not pick it up within an hour. Prints the new job's id.

    With --server, an admin token in PATCHCTL_TOKEN; otherwise the local database.
    Exit codes: 0 issued, 1 no such job, not failed/expired, or retried already, 2 usage or
    I/O error.
    """
    from controller.store import operations  # noqa: PLC0415 - keep --help fast

    def local(conn: Connection, now: datetime, who: ops.Operator) -> dict[str, Any]:
        new_id = operations.retry_job(conn, job_id, who=who, now=now, pickup=RETRY_PICKUP)
        return {"id": job_id, "retryJobId": new_id}

    answer = _act(
        ctx, f"/api/v1/jobs/{job_id}/retry", local,
        server=server, ca_file=ca_file, db_url=db_url, state_dir=state_dir, reason=reason,
    )  # fmt: skip
    _emit(answer, str(answer["retryJobId"]), as_json=as_json)


# --- alerts -----------------------------------------------------------------------------------


def _alert_command(name: str, verb: str, path: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text)
    @click.argument("alert_id", type=click.IntRange(min=1))
    @_options
    def command(
        ctx: click.Context,
        alert_id: int,
        db_url: str | None,
        state_dir: Path,
        server: str | None,
        ca_file: Path | None,
        reason: str,
        as_json: bool,
    ) -> None:
        from controller.store import operations  # noqa: PLC0415 - keep --help fast

        act = getattr(operations, f"{path}_alert")

        def local(conn: Connection, now: datetime, who: ops.Operator) -> dict[str, Any]:
            act(conn, alert_id, who=who, now=now)
            return {"id": alert_id, verb: True}

        answer = _act(
            ctx, f"/api/v1/alerts/{alert_id}/{path}", local,
            server=server, ca_file=ca_file, db_url=db_url, state_dir=state_dir, reason=reason,
        )  # fmt: skip
        _emit(answer, f"{verb} alert {alert_id}", as_json=as_json)

    return command


_ALERT_EXITS = (
    "\n\nWith --server, an admin token in PATCHCTL_TOKEN; otherwise the local database. An "
    "alert that concerns every tenant (no tenant) is acted on locally only.\n\nExit codes: 0 "
    "done, 1 no such alert or already {verb}, 2 usage or I/O error."
)
ack = _alert_command(
    "ack",
    "acknowledged",
    "acknowledge",
    "Acknowledge alert ALERT_ID: it records who and when, and stays unresolved until its "
    "condition clears or it is resolved." + _ALERT_EXITS.format(verb="acknowledged"),
)
resolve = _alert_command(
    "resolve",
    "resolved",
    "resolve",
    "Resolve alert ALERT_ID now (an acknowledgement is kept)."
    + _ALERT_EXITS.format(verb="resolved"),
)


SUB_COMMANDS: dict[str, tuple[click.Command, ...]] = {
    "devices": (retire, rotate_token),
    "jobs": (cancel, retry),
    "alerts": (ack, resolve),
}


def add_sub_commands(group: click.Group) -> None:
    """Add the write sub-commands of the `devices`, `jobs` or `alerts` group (by its name)."""
    for command in SUB_COMMANDS[group.name or ""]:
        group.add_command(command)
