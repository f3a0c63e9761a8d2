"""Tokens: enrolment (per tenant), read and admin (per tenant path) and device tokens.

A token is shown once, when it is created; the store keeps only the SHA-256 of the secret.
Secrets carry 256 bits from `secrets`, so a plain hash (no salt, no stretching) is enough: there
is nothing to brute-force, and the hash doubles as the lookup key. The prefix names the kind
(`pce_` enrolment, `pcr_` read, `pca_` admin, `pcd_` device) so secret scanners and people can
tell them apart.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from controller.kinds.common import tenant_parent
from controller.store import schema
from controller.store.scopes import in_scope

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection


class TokenKind(StrEnum):
    ENROLLMENT = "enrollment"
    READ = "read"
    DEVICE = "device"
    ADMIN = "admin"


PREFIXES = {
    TokenKind.ENROLLMENT: "pce_",
    TokenKind.READ: "pcr_",
    TokenKind.DEVICE: "pcd_",
    TokenKind.ADMIN: "pca_",
}
MAX_SECRET_LENGTH = 200


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token; `secret` exists only here and is never stored."""

    id: str
    kind: TokenKind
    tenant: str
    secret: str
    created_at: datetime
    expires_at: datetime | None
    device_id: str | None = None
    max_uses: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: str
    kind: TokenKind
    tenant: str
    device_id: str | None
    description: str = ""

    @property
    def actor(self) -> str:
        """The audit trail's name for this token: its id and what it is for (never its secret)."""
        note = f" ({self.description})" if self.description else ""
        return f"{self.kind} token {self.token_id}{note}"


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(kind: TokenKind) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def ensure_tenant(conn: Connection, tenant: str, *, now: datetime) -> None:
    """Create the tenant row (and its partner's) when missing."""
    for path in (p for p in (tenant_parent(tenant), tenant) if p):
        exists = conn.execute(
            sa.select(schema.tenants.c.path).where(schema.tenants.c.path == path)
        ).first()
        if exists is None:
            conn.execute(
                schema.tenants.insert().values(
                    path=path, parent=tenant_parent(path), display_name="", created_at=now
                )
            )


def create_token(  # noqa: PLR0913 - keyword-only, one per token column
    conn: Connection,
    *,
    kind: TokenKind,
    tenant: str,
    now: datetime,
    description: str = "",
    expires_at: datetime | None = None,
    device_id: str | None = None,
    max_uses: int | None = None,
) -> IssuedToken:
    """Create a token and return it with its secret (the only time the secret is known).

    `max_uses` (enrolment tokens only): how many enrolments it allows; None: no limit."""
    if (kind is TokenKind.DEVICE) != (device_id is not None):
        raise ValueError("device tokens, and only they, name a device")
    if max_uses is not None and (kind is not TokenKind.ENROLLMENT or max_uses < 1):
        raise ValueError("only enrolment tokens have a use limit, and it is at least 1")
    ensure_tenant(conn, tenant, now=now)
    secret = new_secret(kind)
    token_id = "tok_" + secrets.token_hex(8)
    conn.execute(
        schema.tokens.insert().values(
            id=token_id,
            kind=kind.value,
            tenant=tenant,
            device_id=device_id,
            secret_hash=hash_secret(secret),
            description=description,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            max_uses=max_uses,
            uses=0,
        )
    )
    return IssuedToken(
        id=token_id,
        kind=kind,
        tenant=tenant,
        secret=secret,
        created_at=now,
        expires_at=expires_at,
        device_id=device_id,
        max_uses=max_uses,
    )


def authenticate(conn: Connection, secret: str, *, now: datetime) -> Principal | None:
    """The principal of a valid (known, unrevoked, unexpired) secret, else None."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    t = schema.tokens.c
    row = conn.execute(
        sa.select(
            t.id, t.kind, t.tenant, t.device_id, t.description, t.expires_at, t.revoked_at
        ).where(t.secret_hash == hash_secret(secret))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return Principal(
        token_id=row.id,
        kind=TokenKind(row.kind),
        tenant=row.tenant,
        device_id=row.device_id,
        description=row.description or "",
    )


def use_enrolment_token(conn: Connection, token_id: str, *, delta: int = 1) -> bool:
    """Count `delta` enrolments on a token; False (nothing counted) when that would pass its
    `max_uses`. One conditional UPDATE: on PostgreSQL a concurrent enrolment waits for the row
    lock and re-checks the condition on the new count, on SQLite writers are serialised, so two
    enrolments never both take the last use. A negative `delta` gives uses back."""
    t = schema.tokens.c
    statement = schema.tokens.update().where(t.id == token_id).values(uses=t.uses + delta)
    if delta > 0:
        statement = statement.where(sa.or_(t.max_uses.is_(None), t.uses + delta <= t.max_uses))
    return conn.execute(statement).rowcount == 1


def token_uses(conn: Connection, token_id: str) -> tuple[int, int | None]:
    """(uses, max_uses) of a token."""
    t = schema.tokens.c
    row = conn.execute(sa.select(t.uses, t.max_uses).where(t.id == token_id)).one()
    return int(row.uses), row.max_uses


def revoke_device_tokens(conn: Connection, device_id: str) -> list[str]:
    """Revoke every token of a device by deleting its rows, live and revoked alike; returns the
    secret hashes of the live ones (for caches).

    Called on re-enrolment, which replaces the device's token: a replaced token has nothing
    left to show (the device row keeps the enrolment), and keeping its row would let a device
    that re-enrols in a loop grow the table without bound (issue 11.6: 2,000 re-enrolments
    left 1,999 rows).
    """
    t = schema.tokens.c
    hashes = list(
        conn.execute(
            sa.select(t.secret_hash).where(t.device_id == device_id, t.revoked_at.is_(None))
        ).scalars()
    )
    conn.execute(schema.tokens.delete().where(t.device_id == device_id))
    return hashes


def revoke_token(conn: Connection, token_id: str, *, now: datetime) -> bool:
    """Revoke one token by id; False when there is no such live token."""
    t = schema.tokens.c
    result = conn.execute(
        schema.tokens.update()
        .where(t.id == token_id, t.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def list_tokens(conn: Connection, *, scope: str | None = None) -> list[dict[str, object]]:
    """Every token of a tenant scope (None: all) without its secret, newest first."""
    t = schema.tokens.c
    query = sa.select(
        t.id,
        t.kind,
        t.tenant,
        t.device_id,
        t.description,
        t.created_at,
        t.expires_at,
        t.revoked_at,
        t.max_uses,
        t.uses,
    )
    if scope is not None:
        query = query.where(in_scope(t.tenant, scope))
    rows = conn.execute(query.order_by(t.created_at.desc(), t.id))
    return [dict(row) for row in rows.mappings()]


def tenant_paths(conn: Connection) -> list[str]:
    """Every known tenant path (partners and their clients), in no promised order."""
    return list(conn.execute(sa.select(schema.tenants.c.path)).scalars())
