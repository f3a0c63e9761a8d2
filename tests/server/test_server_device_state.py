"""Device state that is right and agrees everywhere (issue 13, classes 5, 6 and 9).

The real app over httpx's ASGI transport (its writer running), a real git repository with a
small policy, the real reconciler on the same store, on SQLite and PostgreSQL. Only the clock
is set by hand: the server's, and, through `scannedAt`, the agent's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from gitrepos import GROUPS, TENANTS, PolicyRepo

from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.store import reports, schema

if TYPE_CHECKING:
    from conftest import Api

pytestmark = pytest.mark.anyio

TENANT = "acme/retail"
PATCH = "USN-7001-1"
# The api fixture's clock starts on Friday 2026-11-20 09:00 UTC: the daily window below is open
# from 09:00 to 13:00 (installs start until 12:30).
POLICY = """\
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: linux-security, tenant: acme/retail}
spec:
  os: linux
  targets: {groups: [linux-web]}
  include: [USN-7001-1, USN-7002-1]
  staleScanAfter: 3d
---
apiVersion: patchctl/v1
kind: Approval
metadata: {name: openssl, tenant: acme/retail}
spec:
  patches: [USN-7001-1, USN-7002-1]
  targets: {groups: [linux-web]}
  reason: CVE-2026-1234 hot fix
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: daily, tenant: acme/retail}
spec:
  targets: {groups: [linux-web]}
  recurrence: {cron: "0 9 * * *"}
  timezone: UTC
  duration: 4h
  cutoff: 30m
  approval: manual
  reboot: never
---
apiVersion: patchctl/v1
kind: ScanSchedule
metadata: {name: linux-daily}
spec:
  targets: {selector: {os: linux}}
  every: 24h
"""


@pytest.fixture
def repo(tmp_path: Path) -> PolicyRepo:
    found = PolicyRepo(tmp_path / "repo")
    found.write("inventory/tenants.yaml", TENANTS)
    found.write("inventory/groups/groups.yaml", GROUPS)
    found.write("policies/state.yaml", POLICY)
    found.commit("policy")
    return found


@pytest.fixture
def reconciler(repo: PolicyRepo, api: Api, tmp_path: Path) -> Reconciler:
    return Reconciler(
        store=api.store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=api.clock,
    )


def scan_body(scanned_at: datetime, *, missing: tuple[str, ...] = (PATCH,), **extra: Any) -> dict:
    return {
        "scan": {
            "scannedAt": scanned_at.isoformat(),
            "rebootRequired": False,
            "missing": [{"id": p} for p in missing],
            **extra,
        }
    }


async def report(api: Api, device: str, auth: dict[str, str], body: dict) -> dict[str, Any]:
    answer = await api.client.post(f"/api/v1/devices/{device}/report", json=body, headers=auth)
    return {"status": answer.status_code, **answer.json()}


def jobs_of(api: Api, device: str) -> list[tuple[str, str, str]]:
    """(kind, state, reason) of the device's jobs, oldest first."""
    j = schema.jobs.c
    with api.store.read() as conn:
        rows = conn.execute(
            sa.select(j.kind, j.state, j.payload)
            .where(j.device_id == device)
            .order_by(j.created_at, j.id)
        ).all()
    return [(r.kind, r.state, (r.payload or {}).get("reason", "")) for r in rows]


def compliance_of(api: Api, device: str) -> str:
    c = schema.compliance.c
    with api.store.read() as conn:
        return str(conn.execute(sa.select(c.state).where(c.device_id == device)).scalar_one())


def applied(outcome: Outcome) -> Outcome:
    assert "applied" == outcome.result, outcome.errors
    return outcome


# --- class 5: agent clocks ------------------------------------------------------------------


async def test_a_scan_dated_beyond_the_skew_is_refused_naming_the_field(api: Api) -> None:
    """A scan a year ahead of the server's clock gets 422 `clock-skew` on `scan.scannedAt` and changes nothing."""
    device, auth = await api.enroll()
    answer = await report(api, device, auth, scan_body(api.clock() + timedelta(days=365)))
    assert (422, "clock-skew", "scan.scannedAt") == (
        answer["status"],
        answer["error"],
        answer["details"][0]["field"],
    )
    assert answer["message"].startswith("scan.scannedAt: 2027-11-20T09:00:00+00:00 is later than")
    d = schema.devices.c
    with api.store.read() as conn:
        stored = conn.execute(sa.select(d.last_scan_at).where(d.id == device)).scalar_one()
    assert stored is None


@pytest.mark.parametrize(
    ("ahead", "expected"),
    [
        pytest.param(timedelta(minutes=5), "stored", id="at-the-skew-limit"),
        pytest.param(timedelta(minutes=5, seconds=1), "clock-skew", id="past-the-limit"),
    ],
)
async def test_the_allowed_skew_is_five_minutes(api: Api, ahead: timedelta, expected: str) -> None:
    """An agent clock up to five minutes ahead is tolerated; a second more is refused."""
    device, auth = await api.enroll()
    answer = await report(api, device, auth, scan_body(api.clock() + ahead))
    assert expected == answer.get("scan", answer.get("error"))


async def test_a_future_scan_stored_earlier_does_not_make_real_scans_stale(
    api: Api, reconciler: Reconciler
) -> None:
    """A scan stored a year ahead (before scans were bounded) is replaced by the next real one, and the device gets its scan job when due."""
    device, auth = await api.enroll()
    future = api.clock() + timedelta(days=365)
    with api.store.write() as conn:  # as an older version stored it
        reports.write_reports(
            conn,
            [reports.Report(device, scan=reports.Scan(scanned_at=future, reboot_required=False))],
            now=api.clock(),
        )
    api.clock.advance(minutes=1)
    answer = await report(api, device, auth, scan_body(api.clock()))
    assert "stored" == answer["scan"]
    applied(reconciler.reconcile())
    assert "non-compliant" == compliance_of(api, device)
    assert [("install", "pending")] == [(k, s) for k, s, _ in jobs_of(api, device)]
    api.clock.advance(hours=24)
    await report(api, device, auth, {})  # a heartbeat: online
    applied(reconciler.reconcile())
    assert ("scan", "pending", "scan due every 1 day, 0:00:00 (last 2026-11-20T09:01Z)") == (
        jobs_of(api, device)[-1]
    )


@pytest.mark.parametrize(
    "agent_offset",
    [
        pytest.param(timedelta(days=-365), id="agent-a-year-behind"),
        pytest.param(timedelta(minutes=4), id="agent-4-minutes-ahead"),
    ],
)
async def test_freshness_is_measured_from_the_servers_receive_time(
    api: Api, reconciler: Reconciler, agent_offset: timedelta
) -> None:
    """A scan stamped by a wrong agent clock is fresh when received, and due again 24 h after it was received."""
    device, auth = await api.enroll()
    received = api.clock()
    assert "stored" == (await report(api, device, auth, scan_body(received + agent_offset)))["scan"]
    applied(reconciler.reconcile())
    assert "non-compliant" == compliance_of(api, device)
    assert [] == [j for j in jobs_of(api, device) if j[0] == "scan"]
    api.clock.advance(hours=23, minutes=59)
    await report(api, device, auth, {})
    applied(reconciler.reconcile())
    assert [] == [j for j in jobs_of(api, device) if j[0] == "scan"]
    api.clock.advance(minutes=1)
    await report(api, device, auth, {})
    applied(reconciler.reconcile())
    assert [("scan", "pending", "scan due every 1 day, 0:00:00 (last 2026-11-20T09:00Z)")] == [
        j for j in jobs_of(api, device) if j[0] == "scan"
    ]
