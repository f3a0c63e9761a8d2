"""A started job that never finishes, through the agent protocol: the real app over httpx's ASGI
transport, a real reconciler on the example repository, a real store on each engine, and the
settable clock. The reconciles run between the calls, as the service's loop would."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from controller.core.patches import PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.store import catalogue, tokens

if TYPE_CHECKING:
    from server.conftest import Api

    from controller.testing import PolicyRepo


pytestmark = pytest.mark.anyio

# Sunday 2026-11-29 02:30 Europe/Berlin: the example's windows-weekly (4h, cutoff 1h) is open.
IN_WINDOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
PATCH = "KB5044284"
# windows-weekly: 4h window + 30 min for a reboot (if-required) + 30 min grace, no scripts.
RUN_TIMEOUT = timedelta(hours=5)


class Agent:
    """A Windows agent speaking the protocol, that acknowledges its install and then vanishes."""

    def __init__(self, api: Api, reconciler: Reconciler) -> None:
        self.api = api
        self.reconciler = reconciler
        self.device = ""
        self.auth: dict[str, str] = {}

    async def enrol(self) -> None:
        body = self.api.enroll_body(
            self.api.token("acme/retail", tokens.TokenKind.ENROLLMENT), "web-01"
        ) | {
            "os": {"family": "windows", "name": "Windows Server 2022", "version": "21H2"},
            "labels": {"env": "prod"},
        }
        answer = await self.api.client.post("/api/v1/enroll", json=body)
        assert 200 == answer.status_code, answer.text
        self.device = answer.json()["deviceId"]
        self.auth = {"Authorization": f"Bearer {answer.json()['deviceToken']}"}

    async def report(self) -> None:
        scan = {
            "scannedAt": self.api.clock().isoformat(),
            "rebootRequired": False,
            "missing": [{"id": PATCH}],
            "installed": [],
        }
        answer = await self.api.client.post(
            f"/api/v1/devices/{self.device}/report", headers=self.auth, json={"scan": scan}
        )
        assert 200 == answer.status_code, answer.text

    async def jobs(self) -> list[dict[str, Any]]:
        answer = await self.api.client.get(f"/api/v1/devices/{self.device}/jobs", headers=self.auth)
        assert 200 == answer.status_code, answer.text
        found: list[dict[str, Any]] = answer.json()["jobs"]
        return found

    async def event(self, job_id: str, state: str) -> None:
        answer = await self.api.client.post(
            f"/api/v1/jobs/{job_id}/events", headers=self.auth, json={"state": state}
        )
        assert 200 == answer.status_code, answer.text

    async def scan_when_asked(self) -> None:
        """Run the scan jobs handed out: ack, report the scan, succeed."""
        for job in await self.jobs():
            assert "scan" == job["kind"], job
            await self.event(job["id"], "acked")
            await self.report()
            await self.event(job["id"], "succeeded")

    async def reconcile(self) -> Outcome:
        outcome = await asyncio.to_thread(self.reconciler.reconcile)
        assert "applied" == outcome.result, outcome.errors
        return outcome


@pytest.fixture
def agent(api: Api, example_repo: PolicyRepo, tmp_path: Path) -> Agent:
    api.clock.now = IN_WINDOW
    catalogue.upsert_records(
        api.store,
        [
            PatchRecord(
                id=PATCH,
                os=OsFamily.WINDOWS,
                vendor="microsoft",
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                rating=9.8,
                released=date(2026, 10, 8),
            )
        ],
        now=IN_WINDOW,
    )
    reconciler = Reconciler(
        store=api.store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "state"),
        clock=api.clock,
    )
    return Agent(api, reconciler)


async def stuck_install(agent: Agent, state: str) -> str:
    """Enrol, scan, receive the install, take it to `state`, and fall silent; its id."""
    await agent.enrol()
    await agent.reconcile()
    await agent.scan_when_asked()
    await agent.reconcile()
    issued = await agent.jobs()
    assert [("install", [PATCH])] == [(j["kind"], j["patches"]) for j in issued]
    install = issued[0]["id"]
    assert RUN_TIMEOUT.total_seconds() == issued[0]["payload"]["runTimeoutSeconds"]
    await agent.event(install, "acked")
    if state != "acked":
        await agent.event(install, state)
    return install


async def read(api: Api, path: str) -> dict[str, Any]:
    answer = await api.client.get(path, headers={"Authorization": f"Bearer {api.token('acme')}"})
    assert 200 == answer.status_code, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.mark.parametrize("state", ["acked", "downloading", "installing", "rebooting"])
async def test_a_stuck_install_times_out_and_the_device_is_planned_again(
    api: Api, agent: Agent, state: str
) -> None:
    """Past its run deadline a silent install fails (timed-out, with its last state), an alert
    names the device, a scan is issued at once and the patch installs in the next occurrence."""
    install = await stuck_install(agent, state)
    api.clock.advance(seconds=RUN_TIMEOUT.total_seconds() - 60)
    await agent.reconcile()
    assert [] == await agent.jobs()  # still within its deadline: the device stays busy
    api.clock.advance(seconds=120)
    outcome = await agent.reconcile()
    listed = {j["id"]: j for j in (await read(api, "/api/v1/jobs"))["jobs"]}
    alerts = [
        a for a in (await read(api, "/api/v1/alerts"))["alerts"] if a["kind"] == "JobTimedOut"
    ]
    after = await agent.jobs()
    assert 1 == outcome.counts["jobsTimedOut"]
    assert ("failed", "timed-out", state) == tuple(
        listed[install][k] for k in ("state", "endReason", "endState")
    )
    assert [("critical", agent.device)] == [(a["severity"], a["deviceId"]) for a in alerts]
    assert "web-01" in alerts[0]["message"]
    assert [("scan", f"after:{install}")] == [(j["kind"], j["payload"]["occasion"]) for j in after]
    await agent.scan_when_asked()
    api.clock.now = IN_WINDOW + timedelta(days=7)
    await agent.report()  # the device checks in during the next occurrence
    await agent.reconcile()
    next_week = await agent.jobs()
    assert [("install", [PATCH])] == [(j["kind"], j["patches"]) for j in next_week]
    assert install != next_week[0]["id"]


async def test_a_second_pass_after_the_time_out_changes_nothing(api: Api, agent: Agent) -> None:
    """The time-out is applied once: the next pass fails nothing and raises nothing."""
    await stuck_install(agent, "installing")
    api.clock.advance(seconds=RUN_TIMEOUT.total_seconds() + 60)
    first = await agent.reconcile()
    second = await agent.reconcile()
    assert (1, 0, 0) == (
        first.counts["jobsTimedOut"],
        second.counts["jobsTimedOut"],
        second.counts["alertsRaised"],
    )


async def test_re_enrolment_releases_the_old_install(api: Api, agent: Agent) -> None:
    """The same machine enrolling again releases its stuck install (re-enrolled) at once, and
    the next pass plans the device again."""
    install = await stuck_install(agent, "installing")
    api.clock.advance(minutes=10)
    await agent.enrol()
    listed = {j["id"]: j for j in (await read(api, "/api/v1/jobs"))["jobs"]}
    await agent.reconcile()
    after = await agent.jobs()
    assert ("failed", "re-enrolled", "installing") == tuple(
        listed[install][k] for k in ("state", "endReason", "endState")
    )
    assert [("scan", f"after:{install}")] == [(j["kind"], j["payload"]["occasion"]) for j in after]
