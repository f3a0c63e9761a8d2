"""The service's reconcile loop inside the app: the verified git webhook, writes that trigger a
pass, and the poll interval agents are told around their patch window. The real app over
httpx's ASGI transport with its lifespan running, a real git repository, SQLite."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import FAST_POLL, Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, catalogue, open_store, tokens
from controller.store import runs as run_store
from controller.store import status as status_store
from controller.testing import PolicyRepo

pytestmark = pytest.mark.anyio

SECRET = "s3cret-for-tests"  # noqa: S105 - a test fixture
POLL = timedelta(hours=4)
# Saturday 02:30 UTC: the example's linux-weekly window opens at 03:00 UTC
BEFORE_LINUX_WINDOW = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)


@dataclass
class Service:
    client: httpx.AsyncClient
    controller: Controller
    store: Store
    now: list[datetime]

    def passes_after(self, action_passes: int) -> int:
        assert self.controller.loop.wait_idle(30)
        return self.controller.loop.passes - action_passes


@pytest.fixture
async def service(example_repo: PolicyRepo, tmp_path: Path) -> AsyncIterator[Service]:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    now = [BEFORE_LINUX_WINDOW]
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "state"),
        clock=lambda: now[0],
    )
    controller = Controller(
        reconciler,
        ServiceOptions(
            interval=timedelta(hours=1), jitter=0.0, watch_branch=False, notify=False, feeds=False
        ),
    )
    settings = Settings(clock=lambda: now[0], poll_interval=POLL, webhook_secret=SECRET)
    app = create_app(store, settings, controller)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        assert controller.loop.wait_idle(30)
        yield Service(client, controller, store, now)
    store.close()


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


PUSH = json.dumps({"ref": "refs/heads/main"}).encode()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(
            {"X-Hub-Signature-256": signed(PUSH), "X-GitHub-Event": "push"}, 202, id="github"
        ),
        pytest.param({"X-Gitea-Signature": signed(PUSH).removeprefix("sha256=")}, 202, id="gitea"),
        pytest.param({"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}, 202, id="gitlab"),
        pytest.param({"X-Patchctl-Signature": signed(PUSH)}, 202, id="generic"),
        pytest.param({"X-Hub-Signature-256": signed(PUSH, "wrong")}, 401, id="wrong-secret"),
        pytest.param({"X-Gitlab-Token": "wrong"}, 401, id="wrong-gitlab-token"),
        pytest.param({}, 401, id="unsigned"),
    ],
)
async def test_the_git_webhook_triggers_a_pass_only_when_verified(
    service: Service, headers: dict[str, str], status: int
) -> None:
    before = service.controller.loop.passes
    answer = await service.client.post(
        "/api/v1/hooks/git", content=PUSH, headers={"Content-Type": "application/json", **headers}
    )
    assert status == answer.status_code, answer.text
    assert (1 if status == 202 else 0) == service.passes_after(before)
    assert SECRET not in answer.text


async def test_a_tampered_body_is_refused(service: Service) -> None:
    """The signature covers the body: the same header on another body proves nothing."""
    answer = await service.client.post(
        "/api/v1/hooks/git",
        content=PUSH + b" ",
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signed(PUSH)},
    )
    assert 401 == answer.status_code
    assert "X-Hub-Signature-256" in answer.json()["message"]


async def test_agents_poll_sooner_for_their_window(service: Service) -> None:
    """A Linux device is told to come back when its window opens (in 30 minutes rather than in
    4 hours), then every 15 minutes while it is open; the writes of its enrolment and report
    started the pass that knows its window."""
    with service.store.write() as conn:
        secret = tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/logistics", now=service.now[0]
        ).secret
    before = service.controller.loop.passes
    enrolled = await service.client.post(
        "/api/v1/enroll",
        json={
            "enrollmentToken": secret,
            "hostname": "db-07",
            "os": {"family": "linux", "name": "Debian GNU/Linux", "version": "12"},
            "agentVersion": "1.0",
            "role": "server",
            "labels": {"role": "db"},
        },
    )
    assert 200 == enrolled.status_code, enrolled.text
    device = enrolled.json()
    assert service.passes_after(before) >= 1
    auth = {"Authorization": f"Bearer {device['deviceToken']}"}
    jobs = f"/api/v1/devices/{device['deviceId']}/jobs"
    assert 1800 == (await service.client.get(jobs, headers=auth)).json()["pollInterval"]
    service.now[0] = BEFORE_LINUX_WINDOW + timedelta(hours=1)  # 03:30: the window is open
    service.controller.trigger("test")
    assert service.controller.loop.wait_idle(30)
    answer = (await service.client.get(jobs, headers=auth)).json()
    assert FAST_POLL.total_seconds() == answer["pollInterval"]
    service.now[0] = BEFORE_LINUX_WINDOW + timedelta(hours=5)  # 07:30: closed, a week to go
    service.controller.trigger("test")
    assert service.controller.loop.wait_idle(30)
    answer = (await service.client.get(jobs, headers=auth)).json()
    assert POLL.total_seconds() == answer["pollInterval"]


def test_due_patch_feeds_are_imported_after_a_pass(
    example_repo: PolicyRepo, tmp_path: Path
) -> None:
    """The example's PatchFeed is due on first sight: the chore after the first pass imports
    the catalogue it names, keeps its status, and asks for a pass that plans with it."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "state"),
        clock=lambda: BEFORE_LINUX_WINDOW,
    )
    options = ServiceOptions(watch_branch=False, notify=False, scheduled_reports=False)
    controller = Controller(reconciler, options)
    assert 0 == catalogue.catalogue_size(store)
    controller.start()
    try:
        deadline = time.monotonic() + 60
        while controller.loop.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert controller.loop.wait_idle(30)
    finally:
        controller.stop()
    with store.read() as conn:
        feed = status_store.get_status(conn)["feed:*/example-catalogue"]["value"]
    assert 1939 == catalogue.catalogue_size(store)
    assert ("ok", 1939) == (feed["result"], feed["counts"]["new"])
    assert controller.loop.passes >= 2
    store.close()


async def test_metrics_show_the_leader_and_the_reconciles_of_the_loop(service: Service) -> None:
    """With the loop running, /metrics shows this replica leading and, to a read token, the
    passes the loop stored: each applied, none invalid, the last one's end as last success."""
    with service.store.read() as conn:
        runs = run_store.list_reconcile_runs(conn, limit=100)
    with service.store.write() as conn:
        secret = tokens.create_token(
            conn, kind=tokens.TokenKind.READ, tenant="acme", now=service.now[0]
        ).secret
    service.now[0] += timedelta(hours=1)  # no pass runs: the interval is an hour of real time
    public = (await service.client.get("/metrics")).text
    fleet = (
        await service.client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    ).text

    def value(text: str, sample: str) -> float:
        [found] = [line for line in text.splitlines() if line.startswith(sample + " ")]
        return float(found.rpartition(" ")[2])

    first_applied = min(run["finished_at"] for run in runs)
    assert (
        1.0,
        len(runs),
        0.0,
        max(run["finished_at"] for run in runs).timestamp(),
        (service.now[0] - first_applied).total_seconds(),
    ) == (
        value(public, "patchctl_leader"),
        value(fleet, 'patchctl_reconcile_duration_seconds_count{result="applied"}'),
        value(fleet, "patchctl_policy_invalid"),
        value(fleet, "patchctl_reconcile_last_success_timestamp_seconds"),
        value(fleet, "patchctl_applied_revision_age_seconds"),
    )
