"""Opening the store: migrations, schema drift, refusal of a newer schema, SQLite pragmas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from controller.store import SchemaTooNewError, Store, StoreError, open_store
from controller.store import alerts as alert_store
from controller.store.database import head_revision
from controller.store.schema import metadata


def test_open_migrates_to_head(store: Store) -> None:
    """A new database is created at the newest revision with every table."""
    with store.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert head_revision() == store.schema_revision()
    assert set(metadata.tables) <= tables


def test_reopening_changes_nothing(database_url: str) -> None:
    """Opening an up-to-date database twice leaves it at the same revision."""
    first = open_store(database_url)
    first.close()
    second = open_store(database_url)
    try:
        assert head_revision() == second.schema_revision()
    finally:
        second.close()


def test_migrations_match_the_tables(store: Store) -> None:
    """The migrated schema and `controller.store.schema` describe the same tables."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert [] == differences


def test_newer_schema_is_refused(database_url: str) -> None:
    """A database stamped by a newer patchctl is refused with a message that says what to do."""
    open_store(database_url).close()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    with pytest.raises(SchemaTooNewError) as raised:
        open_store(database_url)
    message = str(raised.value)
    assert "9999_from_the_future" in message
    assert "newer patchctl" in message
    assert "Upgrade patchctl" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@localhost/db", "not supported"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "not a database URL"),
    ],
    ids=["other-engine", "memory", "garbage"],
)
def test_unusable_urls_are_refused(url: str, expected: str) -> None:
    """URLs the store cannot use are refused with a clear reason."""
    with pytest.raises(StoreError) as raised:
        open_store(url)
    assert expected in str(raised.value)


def test_unreachable_postgres_is_a_store_error() -> None:
    """A PostgreSQL server that does not answer gives a StoreError, not a traceback."""
    with pytest.raises(StoreError) as raised:
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "127.0.0.1:1" in str(raised.value)


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_store: Store) -> None:
    """SQLite connections use WAL, NORMAL sync, a busy timeout and enforce foreign keys."""
    with sqlite_store.read() as conn:
        values = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 15000,
        "foreign_keys": 1,
    } == values


def test_state_directory_is_created(tmp_path: Path) -> None:
    """The SQLite file's directory is created when missing."""
    path = tmp_path / "nested" / "state" / "patchctl.db"
    open_store(f"sqlite:///{path}").close()
    assert path.is_file()


def test_tenant_documents_audit_rows_get_their_partner(database_url: str) -> None:
    """0011: audit rows and ApprovalRejected alerts of a Tenant document, stored without a
    tenant (which every scope read), belong to the partner the document defines; those of other
    objects without a tenant (a policy of every tenant, an invalid commit) keep none."""
    from alembic import command  # noqa: PLC0415

    from controller.store import database  # noqa: PLC0415

    open_store(database_url).close()
    engine = sa.create_engine(database_url)
    config = database._alembic_config()
    columns = "at, tenant, actor, action, object, revision, details"
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0010_planner_changes")
            for obj in ("Tenant/*/northwind", "Baseline/*/everywhere", ""):
                conn.execute(
                    sa.text(
                        f"INSERT INTO audit_events ({columns}) VALUES "  # noqa: S608 - constants
                        "('2026-11-30 10:00:00', NULL, 'a@b', 'Changed', :o, 'main@sha1:1', '{}')"
                    ),
                    {"o": obj},
                )
            for message in ("Tenant/*/northwind was not applied: no", "Baseline/*/b was not"):
                conn.execute(
                    alert_store.schema.alerts.insert().values(
                        kind="ApprovalRejected",
                        severity="warning",
                        message=message,
                        tenant=None,
                        dedupe_key=message,
                        details={},
                        created_at=datetime(2026, 11, 30, 10, tzinfo=UTC),
                    )
                )
            command.upgrade(config, "head")
            found = dict(conn.execute(sa.text("SELECT object, tenant FROM audit_events")).all())
            alerts = dict(conn.execute(sa.text("SELECT message, tenant FROM alerts")).all())
    finally:
        engine.dispose()
    assert {"Tenant/*/northwind": "northwind", "Baseline/*/everywhere": None, "": None} == found
    assert {
        "Tenant/*/northwind was not applied: no": "northwind",
        "Baseline/*/b was not": None,
    } == alerts
