"""`patchctl token`: create, list and revoke enrolment and read tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from controller.cli.common import EXIT_NO, fail, json_option, print_json
from controller.cli.serve import open_store_or_fail, store_options
from controller.kinds.common import TENANT_PATTERN, parse_duration


def _tenant(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import re  # noqa: PLC0415

    if not re.fullmatch(TENANT_PATTERN, value):
        raise click.BadParameter(
            f"{value!r} is not a tenant path: a partner (acme) or a client (acme/retail), "
            "lowercase letters, digits and '-'"
        )
    return value


def _expiry(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def token() -> None:
    """Enrolment and read tokens (stored hashed; a token is shown once, when created)."""


@token.command()
@click.option(
    "--tenant",
    required=True,
    callback=_tenant,
    help="Tenant path: a partner (acme) or a client (acme/retail).",
)
@click.option(
    "--kind",
    type=click.Choice(["enrollment", "read"]),
    default="enrollment",
    show_default=True,
    help="enrollment: agents enrol into the tenant with it. read: the read API, scoped to the "
    "tenant (a partner's token also sees its clients).",
)
@click.option("--description", default="", help="A note for people (who or what uses it).")
@click.option(
    "--expires-in",
    "expires_in",
    default=None,
    callback=_expiry,
    metavar="DURATION",
    help="Let the token expire after this long (e.g. 30d); default: never.",
)
@store_options
@json_option
def create(
    tenant: str,
    kind: str,
    description: str,
    expires_in: timedelta | None,
    db_url: str | None,
    state_dir: Path,
    as_json: bool,
) -> None:
    """Create a token and print it. It is shown only this once: store it now.

    Give enrolment tokens to the agents' installer (`enrollmentToken` of POST /api/v1/enroll);
    give read tokens to people and tools (`Authorization: Bearer ...` on the read API).

    Exit codes: 0 created, 2 bad option or unreachable database.
    """
    from controller.store import tokens  # noqa: PLC0415 - keep --help fast

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
            }
        )
        return
    click.echo(issued.secret)
    click.echo(
        f"{issued.kind.value} token {issued.id} for tenant {issued.tenant}"
        + (f", expires {issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else "")
        + ". It is not shown again.",
        err=True,
    )


@token.command(name="list")
@store_options
@json_option
def list_tokens(db_url: str | None, state_dir: Path, as_json: bool) -> None:
    """List tokens (never their secrets), newest first."""
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
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        who = f" device {row['device_id']}" if row["device_id"] else ""
        click.echo(f"{row['id']}  {row['kind']:<10}  {row['tenant']:<24}  {state}{who}")


@token.command()
@click.argument("token_id")
@store_options
def revoke(token_id: str, db_url: str | None, state_dir: Path) -> None:
    """Revoke a token by its id (tok_...). Running services notice within 30 seconds.

    Exit codes: 0 revoked, 1 no such active token, 2 unreachable database.
    """
    from controller.store import tokens  # noqa: PLC0415

    store = open_store_or_fail(db_url, state_dir)
    try:
        with store.write() as conn:
            done = tokens.revoke_token(conn, token_id, now=datetime.now(tz=UTC))
    finally:
        store.close()
    if not done:
        fail(f"no active token {token_id!r}", EXIT_NO)
    click.echo(f"revoked {token_id}")


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    keys = {"device_id": "deviceId", "created_at": "createdAt", "expires_at": "expiresAt"}
    keys |= {"revoked_at": "revokedAt"}
    return {keys.get(k, k): v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def register(main: click.Group) -> None:
    main.add_command(token)
