"""With the database gone, every endpoint answers 503 `database-unavailable` with Retry-After,
never 500. The real app over httpx's ASGI transport, its lifespan running, on a store whose
database cannot be reached: a SQLite file in a folder that does not exist, and a PostgreSQL URL
nobody listens on."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from controller.errors import WaitUntilError
from controller.runtime.settings import Settings
from controller.server import create_app, errors
from controller.server.writer import WriterClosedError
from controller.store import Store, StoreError
from controller.store.leases import LeaseLostError
from controller.store.operations import Refused

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from controller.testing import SettableClock

pytestmark = pytest.mark.anyio

READ = {"Authorization": "Bearer patchctl_read_0123456789abcdef"}
DEVICE = {"Authorization": "Bearer patchctl_dev_0123456789abcdef"}
ENROLL = {
    "enrollmentToken": "patchctl_enr_0123456789abcdef",
    "hostname": "web-01",
    "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
    "agentVersion": "1.2.0",
    "role": "server",
}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["sqlite-missing-folder", "postgres-refused"])
def gone_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store whose database cannot be reached (the service was started, then it went)."""
    if request.param == "sqlite-missing-folder":
        url = f"sqlite:///{tmp_path / 'gone' / 'patchctl.db'}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test?connect_timeout=2"
    return Store(engine=sa.create_engine(url), url=url)


@pytest.fixture
async def client(gone_store: Store, clock: SettableClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gone_store, Settings(clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://patchctl.test") as c:
            yield c
    gone_store.close()


REQUESTS: list[tuple[str, str, dict[str, str], dict[str, Any] | None]] = [
    ("GET", "/api/v1/status", READ, None),
    ("GET", "/api/v1/devices", READ, None),
    ("GET", "/api/v1/alerts", READ, None),
    ("POST", "/api/v1/enroll", {}, ENROLL),
    ("POST", "/api/v1/devices/dev-1/report", DEVICE, {"facts": {"hostname": "web-01"}}),
    ("GET", "/api/v1/devices/dev-1/jobs", DEVICE, None),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    REQUESTS,
    ids=["status", "devices", "alerts", "enroll", "report", "jobs"],
)
async def test_every_endpoint_answers_503_when_the_database_is_gone(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any] | None,
) -> None:
    """A database outage is 503 database-unavailable with Retry-After, not a 500."""
    answer = await client.request(method, path, headers=headers, json=body)
    assert (503, "database-unavailable", "5") == (
        answer.status_code,
        answer.json()["error"],
        answer.headers.get("Retry-After"),
    )
    assert "retry in 5 seconds" in answer.json()["message"]


async def test_readiness_says_when_to_ask_again(client: httpx.AsyncClient) -> None:
    """/readyz answers 503 with Retry-After too."""
    answer = await client.get("/readyz")
    assert (503, "5") == (answer.status_code, answer.headers.get("Retry-After"))


async def test_the_answer_does_not_leak_the_database_address(client: httpx.AsyncClient) -> None:
    """The client learns that the database is away, not where it lives."""
    answer = await client.get("/api/v1/status", headers=READ)
    assert ("127.0.0.1" in answer.text, "sqlite" in answer.text) == (False, False)


def dbapi(kind: type[sa_exc.DBAPIError], *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return kind(
        "SELECT 1",
        {},
        Exception("server closed the connection"),
        connection_invalidated=invalidated,
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (dbapi(sa_exc.OperationalError), (503, "database-unavailable")),
        (dbapi(sa_exc.InterfaceError), (503, "database-unavailable")),
        (sa_exc.TimeoutError("QueuePool limit reached"), (503, "database-unavailable")),
        (dbapi(sa_exc.DBAPIError, invalidated=True), (503, "database-unavailable")),
        (StoreError("database is not reachable"), (503, "database-unavailable")),
        (WriterClosedError("the service is shutting down"), (503, "unavailable")),
        (LeaseLostError("another replica leads"), (503, "unavailable")),
        (dbapi(sa_exc.IntegrityError), None),
        (Refused("a needs-a-human error"), None),
        (ValueError("a bug"), None),
    ],
    ids=[
        "operational",
        "interface",
        "pool-timeout",
        "connection-invalidated",
        "store",
        "stopping",
        "wait-until",
        "integrity-is-a-bug",
        "needs-a-human",
        "other",
    ],
)
def test_only_outages_are_answered_as_unavailable(
    error: Exception, expected: tuple[int, str] | None
) -> None:
    """The one decision: an outage is a 503 to retry, anything else stays a 500."""
    answer = errors.unavailable(error)
    found = None if answer is None else (answer.status, answer.code)
    assert expected == found
    assert answer is None or {"Retry-After": "5"} == answer.headers


def test_a_wait_until_error_answers_its_own_retry_after() -> None:
    """A wait-until error that names its wait is told to the client as Retry-After."""
    answer = errors.unavailable(WaitUntilError("busy", retry_after=timedelta(seconds=90.5)))
    assert (503, {"Retry-After": "91"}) == (answer and answer.status, answer and answer.headers)
