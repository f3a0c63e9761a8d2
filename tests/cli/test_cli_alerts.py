"""`patchctl alerts` filters and `--columns`, on the local store and with `--server` against the
real app on a real socket: the same filters give the same table (issue 16, item 7). The alerts
are the store test's table (`store/test_store_alert_filters.py`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
import uvicorn
from reports.reportfleet import NOW, build_fleet
from store.test_store_alert_filters import add_alerts

from controller.cli import remote
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, open_store, tokens
from controller.testing import free_port, run_cli

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    store = open_store(url)
    build_fleet(store)
    add_alerts(store)
    try:
        yield url, store
    finally:
        store.close()


def messages(table: str) -> list[str]:
    """The MESSAGE column, the last of the default columns."""
    return [line.split()[-1] for line in table.splitlines()[1:]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["a7", "a6", "a5", "a4", "a3", "a2", "a1"]),
        (("--tenant", "acme/retail"), ["a7", "a4", "a1"]),
        (("--type", "InstallFailed"), ["a6", "a3", "a1"]),
        (("--type", "InstallFailed", "--type", "RebootPending"), ["a6", "a3", "a2", "a1"]),
        (("--severity", "info"), ["a7"]),
        (("--state", "acknowledged"), ["a2"]),
        (("--state", "resolved", "--state", "acknowledged"), ["a7", "a3", "a2"]),
        (("--device", "win-01"), ["a3", "a2"]),
        (("--since", "2026-12-06T06:00Z"), ["a7", "a6", "a5", "a4", "a3"]),
        (("--until", "2026-12-05"), ["a1"]),
        (("--since", "2026-12-05", "--until", "2026-12-06T06:00:00+00:00"), ["a2"]),
        (
            ("--tenant", "acme", "--type", "InstallFailed", "--state", "open"),
            ["a1"],
        ),
    ],
    ids=[
        "all",
        "tenant",
        "type",
        "types",
        "severity",
        "state",
        "states",
        "device",
        "since",
        "until-date",
        "between",
        "combined",
    ],
)
def test_filters_on_the_local_store(
    database: tuple[str, Store], args: tuple[str, ...], expected: list[str]
) -> None:
    """Each option keeps exactly the store's rows for that filter, newest first."""
    code, out, err = run_cli("alerts", *args, "--db", database[0])
    assert (0, "") == (code, err)
    assert expected == messages(out)


def test_columns_are_chosen_by_the_operator(database: tuple[str, Store]) -> None:
    """`--columns` prints those columns in that order; the device is shown by name."""
    code, out, _ = run_cli(
        "alerts",
        "--db",
        database[0],
        "--tenant",
        "acme/logistics",
        "--columns",
        "state,device,kind",
    )
    assert 0 == code
    assert [
        "STATE         DEVICE  KIND",
        "open                  PolicyInvalid",
        "resolved      win-01  InstallFailed",
        "acknowledged  win-01  RebootPending",
    ] == [line.rstrip() for line in out.splitlines()]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--columns", "state,colour"), "unknown column(s) 'colour'; the columns are id, "),
        (("--columns", ","), "unknown column(s) none"),
        (("--type", "InstalFailed"), "'InstalFailed' is not one of 'Initiate'"),
        (("--severity", "high"), "'high' is not one of 'info', 'warning', 'critical'"),
        (("--state", "closed"), "'closed' is not one of 'open', 'acknowledged', 'resolved'"),
        (("--since", "yesterday"), "(2026-12-01, 2026-12-01T08:00Z, 30m, 24h, 7d)"),
        (("--tenant", "ACME Retail"), "is not a tenant path"),
        (
            ("--since", "2026-12-01", "--until", "2026-11-01"),
            "Invalid value for '--until': must be after --since",
        ),
        (
            ("--since", "2026-12-01", "--until", "2026-12-01T00:00:00Z"),
            "Invalid value for '--until': must be after --since",
        ),
    ],
    ids=[
        "column",
        "no-column",
        "type",
        "severity",
        "state",
        "since",
        "tenant",
        "until-before-since",
        "until-at-since",
    ],
)
def test_bad_options_exit_2_naming_them(
    database: tuple[str, Store], args: tuple[str, ...], words: str
) -> None:
    """A bad option exits 2 and says what it accepts."""
    code, out, err = run_cli("alerts", *args, "--db", database[0])
    assert (2, "") == (code, out)
    assert words in " ".join(err.split())


@pytest.fixture
def server(database: tuple[str, Store]) -> Iterator[str]:
    """The service's app on a real loopback port (uvicorn in a thread, the clock at NOW)."""
    config = uvicorn.Config(
        create_app(database[1], Settings(clock=lambda: NOW)),
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while thread.is_alive() and not running.started:
        thread.join(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{config.port}"
    running.should_exit = True
    thread.join(15)


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--type", "InstallFailed", "--type", "RebootPending"),
        ("--severity", "critical", "--state", "open", "--columns", "id,kind,device,state"),
        ("--device", "win-01", "--since", "2026-12-05", "--until", "2026-12-06T06:00Z"),
        ("--tenant", "acme/retail", "--columns", "created_at,tenant,device,message"),
    ],
    ids=["all", "types", "severity-state-columns", "device-time", "tenant"],
)
def test_server_passes_the_filters_through(
    database: tuple[str, Store], server: str, args: tuple[str, ...]
) -> None:
    """With --server and a partner's read token, the table equals the local one of its scope."""
    with database[1].write() as conn:
        token = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW).secret
    scoped = args if "--tenant" in args else (*args, "--tenant", "acme")
    local = run_cli("alerts", *scoped, "--db", database[0])
    remote = run_cli("alerts", *args, "--server", server, env={"PATCHCTL_TOKEN": token})
    assert (0, 0) == (local[0], remote[0]), remote[2]
    assert local[1] == remote[1]
    assert len(local[1].splitlines()) > 1


def test_a_refusal_of_the_service_is_one_line_naming_the_parameter(
    database: tuple[str, Store],
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 422 of the read API (here a parameter a newer command might send to an older service)
    ends a `--server` command with exit 2 and the service's sentence naming the parameter."""
    with database[1].write() as conn:
        token = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW).secret
    monkeypatch.setenv(remote.TOKEN_ENV, token)
    with pytest.raises(SystemExit) as exited:
        remote.get(server, "/api/v1/jobs", ca_file=None, params={"stat": "failed"})
    err = capsys.readouterr().err
    assert (2, 1) == (exited.value.code, len(err.splitlines()))
    assert f"patchctl: {server} answered 422: stat: unknown query parameter" in err


def test_an_empty_range_is_the_same_usage_error_with_server(
    database: tuple[str, Store], server: str
) -> None:
    """`--until` not after `--since` exits 2 with the same message on the store and with
    `--server` (the read API refuses the range too: its 422 names `until`)."""
    with database[1].write() as conn:
        token = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=NOW).secret
    args = ("alerts", "--since", "2026-12-01", "--until", "2026-11-01")
    local = run_cli(*args, "--db", database[0])
    remote_answer = run_cli(*args, "--server", server, env={"PATCHCTL_TOKEN": token})
    assert (2, "") == (local.exit_code, local.stdout)
    assert local == remote_answer
