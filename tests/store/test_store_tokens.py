"""Tokens and enrolment in the store: hashed secrets, expiry, revocation, re-enrolment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from controller.store import Store, devices, schema, tokens

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def enrolment(hostname: str = "WEB-01", tenant: str = "acme/retail") -> devices.Enrolment:
    return devices.Enrolment(
        tenant=tenant,
        hostname=hostname,
        os_family="linux",
        os_name="Ubuntu",
        os_version="24.04",
        role="server",
        agent_version="1.0",
        labels={"role": "web"},
    )


def test_secrets_are_stored_hashed(store: Store) -> None:
    """The database keeps the SHA-256 of a token, never the token itself."""
    with store.write() as conn:
        issued = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW)
    with store.read() as conn:
        stored = conn.execute(sa.select(schema.tokens.c.secret_hash)).scalars().all()
    assert [tokens.hash_secret(issued.secret)] == stored
    assert issued.secret.startswith("pcr_")


def test_token_creation_creates_tenant_and_partner(store: Store) -> None:
    """A client's token creates the client and its partner tenant rows."""
    with store.write() as conn:
        tokens.create_token(conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/retail", now=NOW)
    with store.read() as conn:
        rows = conn.execute(sa.select(schema.tenants.c.path, schema.tenants.c.parent)).all()
    assert [("acme", None), ("acme/retail", "acme")] == sorted((r.path, r.parent) for r in rows)


def test_authenticate_honours_expiry_and_revocation(store: Store) -> None:
    """Expired and revoked tokens authenticate as nobody."""
    with store.write() as conn:
        live = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW)
        expiring = tokens.create_token(
            conn,
            kind=tokens.TokenKind.READ,
            tenant="acme",
            now=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        revoked = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW)
        assert tokens.revoke_token(conn, revoked.id, now=NOW)
    later = NOW + timedelta(hours=2)
    with store.read() as conn:
        found = [
            tokens.authenticate(conn, t.secret, now=later) is not None
            for t in (live, expiring, revoked)
        ]
        assert tokens.authenticate(conn, "pcr_unknown", now=later) is None
        assert tokens.authenticate(conn, "", now=later) is None
    assert [True, False, False] == found


def test_re_enrolment_keeps_the_device_and_revokes_old_tokens(store: Store) -> None:
    """Enrolling the same hostname again gives the same id, a new token, and kills the old one."""
    with store.write() as conn:
        first = devices.enrol(conn, enrolment("WEB-01"), poll_interval=60, now=NOW)
        second = devices.enrol(conn, enrolment("web-01"), poll_interval=60, now=NOW + timedelta(1))
    with store.read() as conn:
        old = tokens.authenticate(conn, first.token.secret, now=NOW + timedelta(2))
        new = tokens.authenticate(conn, second.token.secret, now=NOW + timedelta(2))
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.devices)).scalar_one()
    assert (first.device_id, True, False) == (second.device_id, first.created, second.created)
    assert old is None
    assert new is not None
    assert second.device_id == new.device_id
    assert 1 == count


def test_same_hostname_in_another_tenant_is_another_device(store: Store) -> None:
    """Device names are unique per tenant, not globally."""
    with store.write() as conn:
        retail = devices.enrol(conn, enrolment("web-01", "acme/retail"), poll_interval=60, now=NOW)
        logistics = devices.enrol(
            conn, enrolment("web-01", "acme/logistics"), poll_interval=60, now=NOW
        )
    assert retail.device_id != logistics.device_id
