"""`patchctl token`: create, list and revoke enrolment, read and admin tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from controller.cli.common import (
    EXIT_USAGE,
    check_tenant,
    duration_value,
    fail,
    json_option,
    print_json,
)
from controller.cli.remote import admin_server_options
from controller.cli.serve import open_store_or_fail, store_options


@click.group()
def token() -> None:
    """Enrolment, read and admin tokens (stored hashed; a token is shown once, when created)."""


@token.command()
@click.option(
    "--tenant",
    required=True,
    callback=check_tenant,
    help="Tenant path: a partner (acme) or a client (acme/retail).",
)
@click.option(
    "--kind",
    type=click.Choice(["enrollment", "read", "admin"]),
    default="enrollment",
    show_default=True,
    help="enrollment: agents enrol into the tenant with it. read: the read API, scoped to the "
    "tenant (a partner's token also sees its clients). admin: reads like a read token and may "
    "run the day-2 operations on the tenant's devices, jobs, alerts and tokens, each audited "
    "(docs/operations.md).",
)
@click.option("--description", default="", help="A note for people (who or what uses it).")
@click.option(
    "--expires-in",
    "expires_in",
    default=None,
    callback=duration_value(),
    metavar="DURATION",
    help="Let the token expire after this long (e.g. 30d; more than 0s, at most 100 years); "
    "default: never.",
)
@click.option(
    "--max-uses",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Enrolment tokens: allow N enrolments (re-enrolments count), then refuse with 403 "
    "token-used-up; default: no limit.",
)
@click.option(
    "--repo",
    default=".",
    show_default=True,
    envvar="PATCHCTL_REPO",
    show_envvar=True,
    help="Policy repository (a local path, read as it is on disk, or a git URL) whose Tenant "
    "documents must declare --tenant.",
)
@store_options
@json_option
def create(
    tenant: str,
    kind: str,
    description: str,
    expires_in: timedelta | None,
    max_uses: int | None,
    repo: str,
    db_url: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Create a token and print it. It is shown only this once: store it now.

    Give enrolment tokens to the agents' installer (`enrollmentToken` of POST /api/v1/enroll);
    give read tokens to people and tools (`Authorization: Bearer ...` on the read API); give
    admin tokens to operators (`PATCHCTL_TOKEN` with `--server` for the day-2 commands).

    The tenant must be declared by a Tenant document of the policy repository (--repo, default
    the current directory): a partner's name or one of its clients. Without a readable policy
    repository there, nothing is created: pass --repo.

    Exit codes: 0 created, 2 bad option, undeclared tenant, no policy repository or
    unreachable database.
    """
    from controller.store import tokens  # noqa: PLC0415 - keep --help fast

    if max_uses is not None and kind != "enrollment":
        fail("--max-uses: only enrolment tokens have a use limit")
    check_declared(tenant, repo=repo, state_dir=state_dir)
    store = open_store_or_fail(db_url, state_dir, create=True)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            issued = tokens.create_token(
                conn,
                kind=tokens.TokenKind(kind),
                tenant=tenant,
                description=description[:200],
                expires_at=now + expires_in if expires_in else None,
                max_uses=max_uses,
                now=now,
            )
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "id": issued.id,
                "kind": issued.kind.value,
                "tenant": issued.tenant,
                "token": issued.secret,
                "createdAt": issued.created_at.isoformat(),
                "expiresAt": issued.expires_at.isoformat() if issued.expires_at else None,
                "maxUses": issued.max_uses,
            }
        )
        return
    click.echo(issued.secret)
    click.echo(
        f"{issued.kind.value} token {issued.id} for tenant {issued.tenant}"
        + (f", expires {issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else "")
        + (f", {issued.max_uses} enrolment(s)" if issued.max_uses else "")
        + ". It is not shown again.",
        err=True,
    )


def check_declared(tenant: str, *, repo: str, state_dir: Path) -> None:
    """Exit 2 unless the policy repository at `repo` declares `tenant` (a Tenant document's
    name, or one of its clients)."""
    from controller.sources import git as git_source  # noqa: PLC0415 - keep --help fast
    from controller.sources import repository  # noqa: PLC0415

    if not git_source.is_url(repo) and not any(
        (Path(repo) / folder).is_dir() for folder in ("inventory", "policies")
    ):
        fail(
            f"--repo {repo!r} is not a policy repository (no inventory/ or policies/ folder): "
            "token create checks --tenant against the repository's Tenant documents; pass "
            "--repo PATH (or PATCHCTL_REPO)"
        )
    try:
        loaded = repository.load(repo, state_dir=state_dir)
    except repository.SourceError as exc:
        fail(f"--repo: {exc}")
        raise
    state = loaded.result.state
    if state is None:
        fail(
            f"--repo: the policy in {loaded.description} does not validate, so its tenants are "
            "unknown; fix it first (patchctl validate)"
        )
        raise SystemExit(EXIT_USAGE)  # unreachable: fail() exits
    declared = state.tenant_paths()
    if tenant not in declared:
        known = ", ".join(sorted(declared)) or "none"
        fail(
            f"--tenant: {tenant!r} is not declared by a Tenant document in "
            f"{loaded.description} (declared: {known}); add it to inventory/tenants.yaml first"
        )


@token.command(name="list")
@store_options
@admin_server_options
@json_option
def list_tokens(
    db_url: str | None, state_dir: Path, server: str | None, ca_file: Path | None, as_json: bool
) -> None:
    """List tokens (never their secrets), newest first: every token of the local database, or
    with --server those of the admin token's tenant scope (PATCHCTL_TOKEN).

    Exit codes: 0 listed, 2 unreachable database or service, or not an admin token.
    """
    if server:
        from controller.cli import remote  # noqa: PLC0415

        answer = remote.get(server, "/api/v1/tokens", ca_file=ca_file, kind="admin")
        rows = [_from_api(row) for row in answer["tokens"]]
    else:
        from controller.store import tokens  # noqa: PLC0415

        store = open_store_or_fail(db_url, state_dir)
        try:
            with store.read() as conn:
                rows = tokens.list_tokens(conn)
        finally:
            store.close()
    if as_json:
        print_json([_json_row(row) for row in rows])
        return
    now = datetime.now(tz=UTC)
    for row in rows:
        who = f" device {row['device_id']}" if row["device_id"] else ""
        uses = f" {row['uses']}/{row['max_uses']} uses" if row.get("max_uses") else ""
        click.echo(
            f"{row['id']}  {row['kind']:<10}  {row['tenant']:<24}  {_state(row, now)}{who}{uses}"
        )


def _state(row: dict[str, Any], now: datetime) -> str:
    """`revoked`, `expired`, or `active`, with the expiry when there is one (`active until
    2027-01-31 12:00 UTC`): what the service makes of the token now."""
    if row["revoked_at"]:
        return "revoked"
    expires = row.get("expires_at")
    if isinstance(expires, str):  # the API's answer
        expires = datetime.fromisoformat(expires)
    if expires is None:
        return "active"
    shown = f"{expires.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"expired {shown}" if expires <= now else f"active until {shown}"


@token.command()
@click.argument("token_id")
@click.option("--reason", default="", help="Why; recorded in the audit trail.")
@store_options
@admin_server_options
def revoke(
    token_id: str,
    reason: str,
    db_url: str | None,
    state_dir: Path,
    server: str | None,
    ca_file: Path | None,
) -> None:
    """Revoke a token by its id (tok_...); the revocation is audited. A running service stops
    accepting it at once when revoked through it (--server), otherwise within 30 seconds.

    With --server, an admin token in PATCHCTL_TOKEN (its scope's tokens only); otherwise the
    local database.
    Exit codes: 0 revoked, 1 no such active token, 2 usage or I/O error.
    """
    if server:
        from controller.cli import operations as commands  # noqa: PLC0415

        commands.run_remote(
            server, f"/api/v1/tokens/{token_id}/revoke", ca_file=ca_file, reason=reason
        )
    else:
        from controller.cli import operations as commands  # noqa: PLC0415
        from controller.store import operations  # noqa: PLC0415

        who = commands.local_operator(reason)
        commands.run_local(
            db_url,
            state_dir,
            lambda conn, now: operations.revoke_token(conn, token_id, who=who, now=now),
        )
    click.echo(f"revoked {token_id}")


_SNAKE = {
    "deviceId": "device_id",
    "createdAt": "created_at",
    "expiresAt": "expires_at",
    "revokedAt": "revoked_at",
    "maxUses": "max_uses",
}


def _from_api(row: dict[str, Any]) -> dict[str, Any]:
    return {_SNAKE.get(k, k): v for k, v in row.items()}


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    keys = {snake: camel for camel, snake in _SNAKE.items()}
    return {keys.get(k, k): v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def register(main: click.Group) -> None:
    main.add_command(token)
