"""Enrolment rate limits, token rows pruned on re-enrolment, the log rate limit (issue 11.6),
and the content type of a body that no header announced."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa
import structlog

from controller.logs import LogRateLimit
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.server.limits import RateLimiter, RequestLimits
from controller.store import devices, schema, tokens
from controller.testing import json_logs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, MutableMapping

    from controller.store import Store
    from controller.testing import SettableClock


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def enrol_body(token: str, hostname: str) -> dict[str, object]:
    return {
        "enrollmentToken": token,
        "hostname": hostname,
        "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
        "agentVersion": "1.2.0",
        "role": "server",
    }


def new_token(store: Store, clock: SettableClock, tenant: str = "acme/retail") -> str:
    with store.write() as conn:
        return tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant=tenant, now=clock()
        ).secret


@asynccontextmanager
async def limited_client(
    store: Store, clock: SettableClock, **limits: float
) -> AsyncIterator[httpx.AsyncClient]:
    """A client, from one address, of an app built with these rate limits."""
    app = create_app(store, Settings(clock=clock, **limits))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.anyio
async def test_enrolments_from_one_address_are_rate_limited(store, clock) -> None:
    """Past the per-address burst, enrolment gets 429 with Retry-After and enrols nothing."""
    async with limited_client(store, clock, enrolments_per_address=3) as client:
        answers = [
            await client.post(
                "/api/v1/enroll", json=enrol_body(new_token(store, clock), f"web-{n}")
            )
            for n in range(4)
        ]
    with store.read() as conn:
        enrolled = conn.execute(sa.select(sa.func.count()).select_from(schema.devices)).scalar()
    assert [200, 200, 200, 429] == [a.status_code for a in answers]
    assert ("20", "too-many-requests") == (
        answers[3].headers["retry-after"],
        answers[3].json()["error"],
    )
    assert 3 == enrolled


@pytest.mark.anyio
async def test_enrolments_with_one_token_are_rate_limited(store, clock) -> None:
    """Past the per-token burst, that token gets 429 while another token still enrols."""
    busy, other = new_token(store, clock), new_token(store, clock)
    async with limited_client(store, clock, enrolments_per_token=2) as client:
        answers = [
            await client.post("/api/v1/enroll", json=enrol_body(busy, f"web-{n}")) for n in range(3)
        ]
        fresh = await client.post("/api/v1/enroll", json=enrol_body(other, "db-1"))
    assert [200, 200, 429, 200] == [a.status_code for a in [*answers, fresh]]
    assert "30" == answers[2].headers["retry-after"]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([0, 0, 0, 0], [0.0, 0.0, 0.0, 2.0]),
        ([0, 0, 0, 1], [0.0, 0.0, 0.0, 1.0]),
        ([0, 0, 0, 2, 2], [0.0, 0.0, 0.0, 0.0, 2.0]),
        ([0, 0, 0, 100, 100, 100, 100], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]),
    ],
    ids=["burst-then-wait", "half-refilled", "one-refilled", "refill-capped-at-burst"],
)
def test_rate_limiter_is_a_token_bucket(calls, expected) -> None:
    """A burst of 3, then one call every 2 s; a refused call takes nothing."""
    ticks = Ticks()
    limiter = RateLimiter(rate=0.5, burst=3, clock=ticks)
    waits = []
    for at in calls:
        ticks.now = 1000.0 + at
        waits.append(limiter.wait("k"))
    assert expected == waits


def test_rate_limiter_keeps_a_bounded_number_of_keys() -> None:
    """A flood of distinct keys never holds more than `max_keys` buckets."""
    limiter = RateLimiter(rate=1.0, burst=1, clock=Ticks(), max_keys=100)
    for n in range(10_000):
        limiter.wait(f"address-{n}")
    assert len(limiter._buckets) <= 100


@pytest.mark.anyio
async def test_re_enrolment_replaces_the_token_row(store, clock) -> None:
    """Re-enrolling over HTTP leaves one device token row; the old secrets no longer work."""
    token = new_token(store, clock)
    async with limited_client(store, clock) as client:
        answers = [
            (await client.post("/api/v1/enroll", json=enrol_body(token, "web-01"))).json()
            for _ in range(5)
        ]
        old = await client.get(
            f"/api/v1/devices/{answers[0]['deviceId']}/jobs",
            headers={"Authorization": f"Bearer {answers[0]['deviceToken']}"},
        )
        new = await client.get(
            f"/api/v1/devices/{answers[-1]['deviceId']}/jobs",
            headers={"Authorization": f"Bearer {answers[-1]['deviceToken']}"},
        )
    t = schema.tokens.c
    with store.read() as conn:
        rows = conn.execute(sa.select(t.id).where(t.device_id == answers[0]["deviceId"])).all()
    assert 1 == len({a["deviceId"] for a in answers})
    assert (1, 401, 200) == (len(rows), old.status_code, new.status_code)


def test_repeated_re_enrolments_leave_one_token_row(store, clock) -> None:
    """200 re-enrolments of one device leave one token row for it, not 200 (the issue saw
    1,999 rows after 2,000; 200 shows the same class in a tenth of the time)."""
    enrolment = devices.Enrolment(
        tenant="acme/retail",
        hostname="web-01",
        os_family="linux",
        os_name="Ubuntu",
        os_version="24.04",
        role="server",
        agent_version="1.0",
        labels={},
    )
    with store.write() as conn:
        for _ in range(200):
            enrolled = devices.enrol(conn, enrolment, poll_interval=60, now=clock())
    t = schema.tokens.c
    with store.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(t.device_id == enrolled.device_id)
        ).scalar()
    assert 1 == count


def test_an_admin_revoked_token_of_another_device_is_kept(store, clock) -> None:
    """Re-enrolment prunes only the re-enrolled device's rows; a revoked token elsewhere stays
    listed (it is an administrator's record)."""
    with store.write() as conn:
        kept = tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant="acme", now=clock())
        tokens.revoke_token(conn, kept.id, now=clock())
        listed = {row["id"] for row in tokens.list_tokens(conn)}
    assert kept.id in listed


# --- the log rate limit ---------------------------------------------------------------------


def test_log_rate_limit_passes_a_burst_then_counts_what_it_drops() -> None:
    """20 lines of a kind pass per window; the first after the window says how many dropped."""
    ticks = Ticks()
    limiter = LogRateLimit(burst=20, window=10.0, clock=ticks)
    first = [limiter.admit(("api", "info", "refused")) for _ in range(1000)]
    other = limiter.admit(("api", "info", "enrolled"))
    ticks.now += 10.0
    later = limiter.admit(("api", "info", "refused"))
    assert [0] * 20 + [None] * 980 == first
    assert (0, 980) == (other, later)


def test_a_flood_of_identical_lines_is_collapsed(capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 identical structlog and standard-library lines write at most a burst of each."""
    log = structlog.get_logger("patchctl.api")
    uvicorn_log = logging.getLogger("uvicorn.error")
    with json_logs(capsys) as lines:
        for n in range(10_000):
            log.info("refused", path="/api/v1/enroll", status=401, attempt=n)
            uvicorn_log.warning("Invalid HTTP request received.")
    events = [line["event"] for line in lines]
    assert (20, 20) == (events.count("refused"), events.count("Invalid HTTP request received."))


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ([], b"", "app"),
        ([], b"reason", 415),
        ([(b"content-type", b"application/json")], b"{}", "app"),
    ],
    ids=["empty", "text", "json"],
)
@pytest.mark.anyio
async def test_a_body_no_header_announced_must_still_be_json(
    headers: list[tuple[bytes, bytes]], body: bytes, expected: str | int
) -> None:
    """A POST body that arrives without Content-Length or Transfer-Encoding (a server other
    than uvicorn's HTTP/1.1 may deliver one) is refused 415 unless JSON, as an announced one;
    an empty one reaches the app."""
    reached: list[str] = []
    sent: list[MutableMapping[str, object]] = []

    async def app(_scope: object, _receive: object, _send: object) -> None:
        reached.append("app")

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, object]) -> None:
        sent.append(message)

    limits = RequestLimits(app, max_body_bytes=1024, body_timeout=5)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "query_string": b"",
        "headers": headers,
    }
    await limits(scope, receive, send)
    assert [expected] == (reached or [message["status"] for message in sent[:1]])
