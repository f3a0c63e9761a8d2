"""Which writes start a reconcile pass: only those that change a planner input (issue 14.2).

The real app over httpx's ASGI transport with its lifespan and the real service loop running, a
real git repository, SQLite and PostgreSQL. The writer tells the loop before the HTTP answer is
returned, so "no pass" is read once the loop is idle, with no sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, jobs, schema, tokens
from controller.store.job_states import JobKind
from controller.testing import PolicyRepo

pytestmark = pytest.mark.anyio

POLL = timedelta(minutes=1)
# Saturday 02:30 UTC: the example's next window boundary is 30 minutes away, so no interval or
# window pass falls inside a test
START = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)
FACTS = {
    "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
    "role": "server",
    "labels": {"tier": "web", "site": "lyon"},
    "agentVersion": "1.0",
}
MISSING = [{"id": "USN-7001-1", "title": "openssl", "severity": "high"}, {"id": "USN-7002-1"}]
INSTALLED = [{"id": "USN-6900-1", "installedAt": "2026-11-01T10:00:00+00:00"}]
PACKAGES = [
    {"name": "openssl", "version": "3.0.13", "arch": "amd64"},
    {"name": "bash", "version": "5.2", "arch": "amd64"},
]


@dataclass
class Fleet:
    client: httpx.AsyncClient
    controller: Controller
    store: Store
    now: list[datetime]

    def passes_since(self, before: int) -> int:
        assert self.controller.loop.wait_idle(30)
        return self.controller.loop.passes - before

    async def passes_for(self, method: str, url: str, auth: dict[str, str], **kw: Any) -> int:
        """The passes that one request (answered 200) starts."""
        assert self.controller.loop.wait_idle(30)
        before = self.controller.loop.passes
        answer = await self.client.request(method, url, headers=auth, **kw)
        assert 200 == answer.status_code, answer.text
        return self.passes_since(before)

    async def enrol(self, hostname: str = "web-01") -> tuple[str, dict[str, str]]:
        with self.store.write() as conn:
            secret = tokens.create_token(
                conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/retail", now=self.now[0]
            ).secret
        answer = await self.client.post(
            "/api/v1/enroll",
            json={"enrollmentToken": secret, "hostname": hostname, **FACTS},
        )
        assert 200 == answer.status_code, answer.text
        found = answer.json()
        return found["deviceId"], {"Authorization": f"Bearer {found['deviceToken']}"}


@pytest.fixture
async def fleet(example_repo: PolicyRepo, tmp_path: Path, store: Store) -> AsyncIterator[Fleet]:
    now = [START]
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "state"),
        clock=lambda: now[0],
    )
    options = ServiceOptions(
        interval=timedelta(hours=1), jitter=0.0, watch_branch=False, notify=False, feeds=False
    )
    controller = Controller(reconciler, options)
    # No debounce: each triggering report starts its own pass at once (counted exactly)
    controller.loop.report_debounce = timedelta(0)
    app = create_app(store, Settings(clock=lambda: now[0], poll_interval=POLL), controller)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        assert controller.loop.wait_idle(30)
        yield Fleet(client, controller, store, now)


def report(
    at: datetime,
    *,
    facts: dict[str, Any] | None = None,
    missing: list[dict[str, Any]] | None = None,
    installed: list[dict[str, Any]] | None = None,
    reboot: bool = False,
    packages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "facts": FACTS if facts is None else facts,
        "scan": {
            "scannedAt": at.isoformat(),
            "rebootRequired": reboot,
            "missing": MISSING if missing is None else missing,
            "installed": INSTALLED if installed is None else installed,
        },
        "inventory": {"packages": PACKAGES if packages is None else packages},
    }


LATER = START + timedelta(seconds=30)
CASES = [
    # what the device reports 30 s after its full report at START; the passes it starts
    pytest.param({}, 0, id="heartbeat"),
    pytest.param({"facts": FACTS}, 0, id="same-facts"),
    pytest.param({"facts": {"agentVersion": "1.1", "uptime": 77}}, 0, id="facts-not-planned"),
    pytest.param(report(LATER), 0, id="same-scan-newer"),
    pytest.param(report(START), 0, id="same-scan-replayed"),
    pytest.param(report(START - timedelta(hours=1), missing=[]), 0, id="older-scan"),
    pytest.param(
        report(
            LATER,
            missing=MISSING[::-1],
            installed=[{"id": "USN-6900-1", "installedAt": "2026-11-02T08:00:00+00:00"}],
            packages=PACKAGES[::-1],
        ),
        0,
        id="same-sets-in-another-order",
    ),
    pytest.param(report(LATER, missing=[*MISSING, {"id": "USN-7003-1"}]), 1, id="new-missing"),
    pytest.param(
        report(LATER, missing=MISSING[1:], installed=[*INSTALLED, {"id": "USN-7001-1"}]),
        1,
        id="patch-installed",
    ),
    pytest.param(  # it only fills catalogue gaps: left to the periodic pass
        report(LATER, missing=[{**MISSING[0], "severity": "critical"}, MISSING[1]]),
        0,
        id="agent-metadata-only",
    ),
    pytest.param(report(LATER, reboot=True), 1, id="reboot-signal"),
    pytest.param(
        report(LATER, packages=[*PACKAGES, {"name": "curl", "version": "8.5", "arch": "amd64"}]),
        1,
        id="package-added",
    ),
    pytest.param(
        {"inventory": {"packages": PACKAGES, "kernel": "6.8.0-50"}}, 1, id="kernel-changed"
    ),
    pytest.param({"facts": {**FACTS, "labels": {"tier": "db"}}}, 1, id="labels"),
    pytest.param({"facts": {"labels": {"site": "lyon", "tier": "web"}}}, 0, id="same-labels"),
    pytest.param(
        {"facts": {"os": {"family": "linux", "name": "Ubuntu", "version": "24.10"}}},
        1,
        id="os-version",
    ),
    pytest.param({"facts": {"role": "workstation"}}, 1, id="role"),
]


@pytest.mark.parametrize(("body", "passes"), CASES)
async def test_a_report_starts_a_pass_only_when_it_changes_a_planner_input(
    fleet: Fleet, body: dict[str, Any], passes: int
) -> None:
    """After a full report, a second report starts a pass exactly when it changes something."""
    device, auth = await fleet.enrol()
    url = f"/api/v1/devices/{device}/report"
    assert 1 == await fleet.passes_for("POST", url, auth, json=report(START))
    fleet.now[0] = LATER
    assert passes == await fleet.passes_for("POST", url, auth, json=body)


async def test_the_first_report_after_enrolment_starts_a_pass(fleet: Fleet) -> None:
    """Even a bare heartbeat, the first one since the (re-)enrolment; the next one does not."""
    device, auth = await fleet.enrol()
    url = f"/api/v1/devices/{device}/report"
    assert (1, 0) == (
        await fleet.passes_for("POST", url, auth, json={}),
        await fleet.passes_for("POST", url, auth, json={}),
    )
    _, auth = await fleet.enrol()  # the same hostname: a re-enrolment, a new token
    assert 1 == await fleet.passes_for("POST", url, auth, json={})


@pytest.mark.parametrize(
    ("silence", "passes"),
    [
        pytest.param(2 * POLL, 0, id="two-polls-still-online"),
        pytest.param(2 * POLL + timedelta(seconds=1), 1, id="back-from-offline"),
    ],
)
async def test_a_device_coming_back_online_starts_a_pass(
    fleet: Fleet, silence: timedelta, passes: int
) -> None:
    """The planner's rule (online: seen within two poll intervals), at its boundary."""
    device, auth = await fleet.enrol()
    url = f"/api/v1/devices/{device}/report"
    assert 1 == await fleet.passes_for("POST", url, auth, json={})
    fleet.now[0] += silence
    assert passes == await fleet.passes_for("POST", url, auth, json={})


async def test_job_events_start_a_pass_only_when_they_change_the_job(fleet: Fleet) -> None:
    """Delivery and replays do not; a new state, or patch results while it runs, do."""
    device, auth = await fleet.enrol()
    assert 1 == await fleet.passes_for("POST", f"/api/v1/devices/{device}/report", auth, json={})
    answer = await fleet.client.get(f"/api/v1/devices/{device}/jobs", headers=auth)
    [job] = answer.json()["jobs"]  # the initial scan the planner issued after the enrolment
    events = f"/api/v1/jobs/{job['id']}/events"
    acked = {"state": "acked", "seq": 1}
    with fleet.store.write() as conn:  # an install running beside it, for its patch results
        jobs.insert_jobs(
            conn,
            [
                jobs.NewJob(
                    id="install-1",
                    device_id=device,
                    tenant="acme/retail",
                    kind=JobKind.INSTALL,
                    revision="main@sha1:0123",
                    patch_ids=("USN-7001-1",),
                )
            ],
            now=fleet.now[0],
        )
        # taken and running: a pass ends only jobs the agent has not taken
        conn.execute(
            schema.jobs.update()
            .where(schema.jobs.c.id == "install-1")
            .values(state="installing", started_at=fleet.now[0])
        )
    install = "/api/v1/jobs/install-1/events"
    result = {
        "state": "installing",
        "seq": 2,
        "patches": [{"id": "USN-7001-1", "result": "failed"}],
    }
    steps = [
        ("poll again (delivered again)", "GET", f"/api/v1/devices/{device}/jobs", None),
        ("acked", "POST", events, acked),
        ("acked, replayed", "POST", events, acked),
        ("progress, output only", "POST", events, {"state": "acked", "seq": 2, "output": "..."}),
        ("succeeded", "POST", events, {"state": "succeeded", "seq": 4}),
        ("install: progress, output only", "POST", install, {"state": "installing", "seq": 1}),
        ("install: progress, a patch result", "POST", install, result),
    ]
    found = [
        (name, await fleet.passes_for(method, url, auth, json=body))
        for name, method, url, body in steps
    ]
    assert [
        ("poll again (delivered again)", 0),
        ("acked", 1),
        ("acked, replayed", 0),
        ("progress, output only", 0),
        ("succeeded", 1),
        ("install: progress, output only", 0),
        ("install: progress, a patch result", 1),
    ] == found
