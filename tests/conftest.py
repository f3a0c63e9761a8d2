"""Shared fixtures: databases for the store, server and simulation tests.

What is real: SQLite files in `tmp_path` (WAL, the store's own pragmas and migrations), the
PostgreSQL server named by PATCHCTL_TEST_POSTGRES_URL (each test gets a schema of its own,
dropped afterwards), the FastAPI app driven through httpx's ASGI transport with its lifespan
(writer included), and, in the end-to-end tests, `patchctl serve` as a subprocess on a real
loopback port. What is faked: only the clock (`SettableClock`), so that scans, deadlines and
expiry are decided by the test. The helpers behind these fixtures are `controller.testing`.

PostgreSQL tests skip when PATCHCTL_TEST_POSTGRES_URL is unset, except in CI (CI=true), where
an unset variable or an unreachable server fails them instead.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from required import unavailable

from controller.store import open_store
from controller.testing import (
    PolicyRepo,
    SettableClock,
    example_repository,
    policy_repository,
    restore_logging,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from controller.store import Store

POSTGRES_ENV = "PATCHCTL_TEST_POSTGRES_URL"
ENGINES = ("sqlite", "postgresql")


@pytest.fixture
def clock() -> SettableClock:
    """2026-11-20 09:00 UTC, moved by the test."""
    return SettableClock()


@pytest.fixture
def policy_repo(tmp_path: Path) -> PolicyRepo:
    """A repository with one tenant and two groups, committed once."""
    return policy_repository(tmp_path / "repo")


@pytest.fixture
def example_repo(tmp_path: Path) -> PolicyRepo:
    """The project's example repository, committed into a fresh git repository."""
    return example_repository(tmp_path / "example")


def _postgres_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        unavailable(f"{POSTGRES_ENV} is not set")
    try:
        with psycopg.connect(_plain(url), connect_timeout=5):
            pass
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}")
    return url


def _plain(url: str) -> str:
    """The libpq form of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL whose connections use a fresh schema of their own."""
    url = _postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_plain(url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each engine: SQLite in tmp_path, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'patchctl.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """An open, migrated store on each engine."""
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """An open, migrated SQLite store (for tests about SQLite itself)."""
    opened = open_store(f"sqlite:///{tmp_path / 'patchctl.db'}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    """A command run in-process configures logging (`controller.logs`); the next test starts
    from structlog's defaults and the root logger's level again."""
    level = logging.getLogger().level
    yield
    restore_logging(level)
