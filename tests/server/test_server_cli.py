"""The token and serve commands against a real store: in-process with click's runner where the
command stops before serving, as a real process where it serves."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from controller.store import open_store, tokens
from controller.testing import run_cli


def test_token_create_prints_the_secret_once_and_stores_its_hash(tmp_path: Path) -> None:
    """`token create` prints the token; the store keeps only its hash; `list` never shows it."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    code, out, err = run_cli("token", "create", "--tenant", "acme/retail", "--db", db)
    secret = out.strip()
    listed = run_cli("token", "list", "--json", "--db", db)[1]
    store = open_store(db)
    try:
        with store.read() as conn:
            principal = tokens.authenticate(conn, secret, now=datetime.now(tz=UTC))
    finally:
        store.close()
    assert 0 == code
    assert secret.startswith("pce_")
    assert "not shown again" in err
    assert secret not in listed
    assert principal is not None
    assert ("acme/retail", "enrollment") == (principal.tenant, principal.kind.value)


def test_token_create_json_and_revoke(tmp_path: Path) -> None:
    """`--json` gives the id and token; `revoke` by id works once, then exits 1."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    created = json.loads(
        run_cli("token", "create", "--tenant", "acme", "--kind", "read", "--json", "--db", db)[1]
    )
    first = run_cli("token", "revoke", created["id"], "--db", db)
    second = run_cli("token", "revoke", created["id"], "--db", db)
    assert ("read", "acme") == (created["kind"], created["tenant"])
    assert (0, 1) == (first[0], second[0])


def test_bad_tenant_is_a_usage_error(tmp_path: Path) -> None:
    """A tenant path that is not one exits 2 and says what a tenant path looks like."""
    code, _, err = run_cli(
        "token", "create", "--tenant", "ACME Retail", "--db", f"sqlite:///{tmp_path / 'p.db'}"
    )
    assert 2 == code
    assert "not a tenant path" in err


def test_serve_refuses_a_newer_schema(tmp_path: Path) -> None:
    """`serve` on a database from a newer patchctl exits 2 with the store's message."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(db).close()
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    code, _, err = run_cli("serve", "--db", db, "--listen", "127.0.0.1:0")
    assert 2 == code
    assert "newer patchctl" in err


def test_serve_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    """A listen address without a port exits 2 naming the expected form."""
    code, _, err = run_cli(
        "serve", "--listen", "localhost", "--db", f"sqlite:///{tmp_path / 'p.db'}"
    )
    assert 2 == code
    assert "HOST:PORT" in err


def test_serve_reports_an_address_in_use(tmp_path: Path) -> None:
    """`serve` on a port that is taken exits 2 and says so (a real process: serving sets
    process-wide logging, signal and collector state)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--db",
                f"sqlite:///{tmp_path / 'p.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert 2 == done.returncode
    assert "address in use" in done.stderr
