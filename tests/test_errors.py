"""The error tree (`controller.errors`): every exception has one kind, the kind decides the
retry, and the CLI exits with the kind's code. Real CLI invocations, real SQLite files."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import controller
from controller import errors
from controller.cli.lazy import LazyGroup
from controller.errors import Kind, RetryPolicy, Verdict
from controller.forges.clients import ForgeError
from controller.notify.channels import DeliveryError
from controller.runtime.feedsources import DOWNLOAD_RETRY, FeedSourceError
from controller.runtime.loop import ERROR_BACKOFF
from controller.sources.git import SourceError
from controller.store import StoreError, leases, open_store
from controller.store.leases import LeaseLostError
from controller.testing import PROJECT_ROOT as ROOT
from controller.testing import run_cli

KINDS = (errors.NeedsHumanError, errors.WaitUntilError, errors.TransientError)
POLICY = RetryPolicy()  # 5 attempts, 2 s doubling up to 5 min, a Retry-After up to 1 h
SECOND = timedelta(seconds=1)


def public_exceptions() -> list[type[BaseException]]:
    """Every public exception class defined in a module of the `controller` package."""
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(controller.__path__, "controller."):
        if module.name.endswith("__main__") or ".migrations" in module.name:
            continue  # the CLI runs when imported; alembic runs the migration scripts
        loaded = importlib.import_module(module.name)
        for name, value in inspect.getmembers(loaded, inspect.isclass):
            defined_here = value.__module__ == loaded.__name__
            if defined_here and issubclass(value, BaseException) and not name.startswith("_"):
                found[f"{value.__module__}.{name}"] = value
    return [found[key] for key in sorted(found)]


EXCEPTIONS = public_exceptions()


def test_the_walk_finds_the_exceptions() -> None:
    """The walk sees the package's exceptions (not an empty list that passes vacuously)."""
    assert len(EXCEPTIONS) >= 30


@pytest.mark.parametrize(
    "cls", [c for c in EXCEPTIONS if c is not errors.PatchctlError], ids=lambda c: c.__qualname__
)
def test_every_exception_has_one_kind(cls: type[BaseException]) -> None:
    """Every public exception derives from PatchctlError and exactly one of the three kinds."""
    kinds = [kind.__name__ for kind in KINDS if issubclass(cls, kind)]
    assert (True, 1) == (issubclass(cls, errors.PatchctlError), len(kinds)), kinds


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        ("controller.runtime.explaining.DeviceNotFoundError", LookupError),
        ("controller.store.operations.NotFound", LookupError),
        ("controller.store.operations.Refused", ValueError),
        ("controller.runtime.plans.CatalogueFileError", ValueError),
        ("controller.server.writer.WriterClosedError", RuntimeError),
    ],
)
def test_builtin_bases_are_kept(cls: str, builtin: type[Exception]) -> None:
    """Callers that catch a builtin base (LookupError, ValueError) still catch these."""
    module, name = cls.rsplit(".", 1)
    assert issubclass(getattr(importlib.import_module(module), name), builtin)


@pytest.mark.parametrize(
    ("error", "attempt", "policy", "expected"),
    [
        pytest.param(errors.NeedsHumanError("x"), 1, POLICY, Verdict(Kind.NEEDS_HUMAN, None), id="needs-a-human"),
        pytest.param(errors.ConfigurationError("x"), 1, POLICY, Verdict(Kind.NEEDS_HUMAN, None), id="configuration"),
        pytest.param(SourceError("x"), 1, POLICY, Verdict(Kind.NEEDS_HUMAN, None), id="source"),
        pytest.param(errors.WaitUntilError("x", retry_after=30 * SECOND), 1, POLICY, Verdict(Kind.WAIT_UNTIL, 30 * SECOND), id="wait-until-retry-after"),
        pytest.param(errors.WaitUntilError("x", retry_after=timedelta(days=1)), 1, POLICY, Verdict(Kind.WAIT_UNTIL, timedelta(hours=1)), id="wait-until-capped"),
        pytest.param(LeaseLostError("x"), 1, POLICY, Verdict(Kind.WAIT_UNTIL, 2 * SECOND), id="wait-until-unknown"),
        pytest.param(errors.TransientError("x"), 1, POLICY, Verdict(Kind.TRANSIENT, 2 * SECOND), id="transient-first"),
        pytest.param(StoreError("x"), 3, POLICY, Verdict(Kind.TRANSIENT, 8 * SECOND), id="transient-third"),
        pytest.param(errors.TransientError("x"), 5, POLICY, Verdict(Kind.TRANSIENT, None), id="transient-spent"),
        pytest.param(ValueError("a bug"), 1, POLICY, Verdict(Kind.TRANSIENT, 2 * SECOND), id="foreign-is-transient"),
        pytest.param(DeliveryError("404", permanent=True), 1, POLICY, Verdict(Kind.NEEDS_HUMAN, None), id="remote-permanent"),
        pytest.param(ForgeError("429", retry_after=90 * SECOND), 1, POLICY, Verdict(Kind.WAIT_UNTIL, 90 * SECOND), id="remote-retry-after"),
        pytest.param(ForgeError("timed out"), 2, POLICY, Verdict(Kind.TRANSIENT, 4 * SECOND), id="remote-transient"),
        pytest.param(FeedSourceError("refused"), 1, DOWNLOAD_RETRY, Verdict(Kind.NEEDS_HUMAN, None), id="feed-refused"),
        pytest.param(FeedSourceError("503", permanent=False), 2, DOWNLOAD_RETRY, Verdict(Kind.TRANSIENT, 4 * SECOND), id="feed-download"),
        pytest.param(FeedSourceError("503", permanent=False), 3, DOWNLOAD_RETRY, Verdict(Kind.TRANSIENT, None), id="feed-download-spent"),
        pytest.param(StoreError("x"), 1, ERROR_BACKOFF, Verdict(Kind.TRANSIENT, SECOND), id="loop-first"),
        pytest.param(StoreError("x"), 7, ERROR_BACKOFF, Verdict(Kind.TRANSIENT, 60 * SECOND), id="loop-capped"),
        pytest.param(RuntimeError("x"), 1000, ERROR_BACKOFF, Verdict(Kind.TRANSIENT, 60 * SECOND), id="loop-never-gives-up"),
    ],
)  # fmt: skip
def test_the_kind_decides_the_retry(
    error: BaseException, attempt: int, policy: RetryPolicy, expected: Verdict
) -> None:
    """needs-a-human: never; wait-until: after the wait it names; transient: back-off."""
    assert expected == errors.decide(error, attempt=attempt, policy=policy)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(errors.NeedsHumanError("x"), 1, id="needs-a-human"),
        pytest.param(DeliveryError("404", permanent=True), 1, id="remote-permanent"),
        pytest.param(errors.ConfigurationError("x"), 2, id="configuration"),
        pytest.param(errors.WaitUntilError("x"), 2, id="wait-until"),
        pytest.param(errors.TransientError("x"), 2, id="transient"),
        pytest.param(OSError("x"), 2, id="foreign"),
    ],
)
def test_exit_code_of_each_kind(error: BaseException, code: int) -> None:
    """The CLI's exit code: 1 needs-a-human, 2 usage, configuration or I/O."""
    assert code == errors.exit_code(error)


# --- the CLI, one real invocation per kind -------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = run_cli(*args, env={"PATCHCTL_CONFIG": ""})
    return result.exit_code, result.stderr


@pytest.fixture
def database(tmp_path: Path) -> str:
    """An empty, migrated SQLite state database."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()
    return url


def test_cli_needs_a_human_exits_1(database: str) -> None:
    """An unknown job (NotFound, needs-a-human) exits 1 with its message."""
    code, err = run("jobs", "retry", "nope", "--db", database)
    assert (1, True) == (code, err.startswith("patchctl: no job 'nope'"))


def test_cli_configuration_exits_2(tmp_path: Path) -> None:
    """A TLS pair that does not load (TlsError, configuration) exits 2 before serving."""
    missing = tmp_path / "missing.pem"
    code, err = run(
        "serve", "--repo", str(ROOT), "--state-dir", str(tmp_path), "--tls-cert", str(missing),
        "--tls-key", str(missing),
    )  # fmt: skip
    assert (2, True) == (code, str(missing) in err)


def test_cli_wait_until_exits_2(database: str, tmp_path: Path) -> None:
    """A second `serve` on a served SQLite database (ReplicaConflictError, wait-until)
    exits 2 naming the one that serves."""
    store = open_store(database)
    held = leases.lock_sqlite(store, now=datetime.now(tz=UTC))
    try:
        code, err = run(
            "serve", "--repo", str(ROOT), "--db", database, "--state-dir", str(tmp_path)
        )
    finally:
        if held is not None:
            held.release()
        store.close()
    assert (2, True) == (code, "is already served by" in err)


def test_cli_transient_exits_2() -> None:
    """A database that does not answer (StoreError, transient) exits 2 saying so."""
    code, err = run("status", "--db", "postgresql+psycopg://patchctl@127.0.0.1:1/none")
    assert (2, True) == (code, "Connection refused" in err)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(errors.NeedsHumanError("no such thing"), 1, id="needs-a-human"),
        pytest.param(errors.ConfigurationError("no such thing"), 2, id="configuration"),
        pytest.param(errors.TransientError("no such thing"), 2, id="transient"),
    ],
)
def test_an_error_no_command_caught_ends_with_its_kinds_code(
    error: errors.PatchctlError, code: int
) -> None:
    """A patchctl error that escapes a command prints its message (no traceback) and exits
    with the code of its kind."""

    @click.command()
    def failing() -> None:
        raise error

    group = LazyGroup(lazy={})
    group.add_command(failing)
    result = CliRunner().invoke(group, ["failing"])
    assert (code, "patchctl: no such thing\n") == (result.exit_code, result.stderr)
