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

from controller.core.explain import explain
from controller.core.patches import FixedPackage, PatchRecord
from controller.kinds.common import OsFamily
from controller.runtime import fleet_metrics, observe
from controller.runtime import status as runtime_status
from controller.runtime.reconcile import Outcome, PolicySource, Reconciler
from controller.server.dashboard import view as dashboard_view
from controller.store import catalogue, reports, schema, tokens
from controller.testing import GROUPS, TENANTS, PolicyRepo

if TYPE_CHECKING:
    from server.conftest import Api

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


# --- helpers for the read side ---------------------------------------------------------------


def read_auth(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token('acme', tokens.TokenKind.READ)}"}


async def compliance_record(api: Api, device: str) -> dict[str, Any]:
    answer = await api.client.get(
        "/api/v1/compliance", params={"device": device}, headers=read_auth(api)
    )
    (record,) = answer.json()["compliance"]
    return {"state": record["state"], **{k: record["patches"][k] for k in STATE_LISTS}}


STATE_LISTS = ("missing", "failed", "pendingReboot")


def explained(reconciler: Reconciler, api: Api, device: str) -> dict[str, tuple[str | None, str]]:
    """Patch id → (state, verdict) as `patchctl explain` computes them."""
    _, loaded = reconciler.fetch_and_load()
    assert loaded.state is not None
    with api.store.read() as conn:
        observed = observe.observe(conn, now=api.clock())
    view = next(d for d in observed.devices if d.id == device)
    result = explain(loaded.state, observed, view, now=api.clock())
    return {p.patch_id: (p.state, p.verdict) for p in result.patches}


def reboot_counts(api: Api) -> tuple[int, int]:
    """Devices pending reboot as the fleet metrics and the dashboard count them."""
    with api.store.read() as conn:
        families = fleet_metrics.collect(conn, scope="acme", now=api.clock())
        board = dashboard_view.read_dashboard(conn, scope="acme", now=api.clock())
    (family,) = [f for f in families if f.name == "patchctl_devices_pending_reboot"]
    return sum(int(sample.value) for sample in family.samples), board.reboots


async def alerts(api: Api, kind: str) -> list[dict[str, Any]]:
    answer = await api.client.get("/api/v1/alerts", headers=read_auth(api))
    return [a for a in answer.json()["alerts"] if a["kind"] == kind]


async def event(api: Api, job: str, auth: dict[str, str], **body: Any) -> None:
    answer = await api.client.post(f"/api/v1/jobs/{job}/events", json=body, headers=auth)
    assert 200 == answer.status_code, answer.text


async def take_install(api: Api, device: str, auth: dict[str, str]) -> str:
    """The agent polls and takes its install job; its id."""
    answer = await api.client.get(f"/api/v1/devices/{device}/jobs", headers=auth)
    (job,) = [j for j in answer.json()["jobs"] if j["kind"] == "install"]
    return str(job["id"])


# --- class 6: pending reboot from the OS signal ---------------------------------------------

HALF_HOUR = timedelta(minutes=30)
DEBIAN_LINUX = PatchRecord(
    id="DSA-9301-1",
    os=OsFamily.LINUX,
    packages=(FixedPackage("linux", "6.1.112-1", "debian:12", "source", "linux"),),
)


@pytest.mark.parametrize(
    ("facts", "installed_ago", "signal", "expected"),
    [
        pytest.param(
            {"lastBootAt": "2026-11-18T09:00:00+00:00"},
            HALF_HOUR,
            True,
            ("non-compliant", [PATCH]),
            id="installed-after-last-boot",
        ),
        pytest.param(
            {"uptime": 3600}, HALF_HOUR, True, ("non-compliant", [PATCH]), id="boot-from-uptime"
        ),
        pytest.param({}, HALF_HOUR, True, ("non-compliant", [PATCH]), id="no-boot-time-today"),
        pytest.param(
            {"uptime": 600}, HALF_HOUR, True, ("compliant", []), id="installed-before-last-boot"
        ),
        pytest.param(
            {"lastBootAt": "2026-11-18T09:00:00+00:00"},
            HALF_HOUR,
            False,
            ("compliant", []),
            id="no-os-signal",
        ),
    ],
)
async def test_the_os_signal_decides_pending_reboot_whoever_installed(
    api: Api,
    reconciler: Reconciler,
    facts: dict[str, Any],
    installed_ago: timedelta,
    signal: bool,
    expected: tuple[str, list[str]],
) -> None:
    """A required patch installed outside patchctl 30 minutes ago, with the scan's rebootRequired, is installed-pending-reboot everywhere."""
    device, auth = await api.enroll()
    installed_at = (api.clock() - installed_ago).isoformat()
    body = {
        "facts": facts,
        "scan": {
            "scannedAt": api.clock().isoformat(),
            "rebootRequired": signal,
            "installed": [
                {"id": PATCH, "installedAt": installed_at},
                {"id": "USN-7002-1", "installedAt": "2026-10-01T00:00:00+00:00"},
            ],
        },
    }
    assert "stored" == (await report(api, device, auth, body))["scan"]
    applied(reconciler.reconcile())
    state, pending = expected
    assert {"state": state, "missing": [], "failed": [], "pendingReboot": pending} == (
        await compliance_record(api, device)
    )
    patch_state = "installed-pending-reboot" if pending else "installed"
    assert (patch_state, "installed") == tuple(
        explained(reconciler, api, device)[p][0] for p in (PATCH, "USN-7002-1")
    )
    count = 1 if signal else 0
    assert (count, count) == reboot_counts(api)


async def test_the_running_kernel_finding_is_an_os_reboot_signal(api: Api) -> None:
    """A running kernel older than the newest installed one counts as a pending reboot in the device, metrics and dashboard."""
    catalogue.upsert_records(api.store, [DEBIAN_LINUX], now=api.clock())
    device, auth = await api.enroll(os={"family": "linux", "name": "Debian", "version": "12"})
    packages = [
        {"name": f"linux-image-{abi}", "version": version, "arch": "amd64", "source": "linux"}
        for abi, version in (("6.1.0-25-amd64", "6.1.106-3"), ("6.1.0-26-amd64", "6.1.112-1"))
    ]
    body = {"inventory": {"kernel": "6.1.0-25-amd64", "packages": packages}}
    assert 200 == (await report(api, device, auth, body))["status"]
    detail = (await api.client.get(f"/api/v1/devices/{device}", headers=read_auth(api))).json()
    assert (True, 1, 1) == (detail["rebootRequired"], *reboot_counts(api))
    # the advisory the new kernel fixes is installed, in effect after the reboot
    assert [("DSA-9301-1", "installed")] == [(p["id"], p["state"]) for p in detail["patches"]]
    packages = packages[1:]  # rebooted into the new kernel, the old one removed
    body = {"inventory": {"kernel": "6.1.0-26-amd64", "packages": packages}}
    assert 200 == (await report(api, device, auth, body))["status"]
    detail = (await api.client.get(f"/api/v1/devices/{device}", headers=read_auth(api))).json()
    assert (False, 0, 0) == (detail["rebootRequired"], *reboot_counts(api))


# --- class 9: what the operator reads agrees ------------------------------------------------


async def test_after_a_failed_install_explain_says_what_compliance_says(
    api: Api, reconciler: Reconciler
) -> None:
    """A failed install is `failed` in compliance and in explain, which promises no install in this occurrence."""
    device, auth = await api.enroll()
    await report(api, device, auth, scan_body(api.clock()))
    applied(reconciler.reconcile())
    job = await take_install(api, device, auth)
    await event(api, job, auth, state="acked")
    failure = {"id": PATCH, "result": "failed", "reason": "dpkg: error processing openssl"}
    await event(api, job, auth, state="failed", patches=[failure])
    api.clock.advance(minutes=1)
    applied(reconciler.reconcile())
    assert {"state": "non-compliant", "missing": [], "failed": [PATCH], "pendingReboot": []} == (
        await compliance_record(api, device)
    )
    state, verdict = explained(reconciler, api, device)[PATCH]
    assert "failed" == state
    assert verdict.startswith(f"failed: job {job} reported dpkg: error processing openssl; ")
    assert verdict.endswith(
        f"already attempted in this occurrence (job {job}, failed); will be installed in "
        "PatchWindow acme/retail/daily at 2026-11-21 09:00Z"
    )
    assert "will be installed now" not in verdict
    assert [("install", "failed")] == [(k, s) for k, s, _ in jobs_of(api, device) if k == "install"]
    (failed_alert,) = await alerts(api, "InstallFailed")
    assert (
        f"{PATCH} failed to install on web-01: dpkg: error processing openssl",
        None,
    ) == (failed_alert["message"], failed_alert["resolvedAt"])


async def test_explain_gives_the_planners_reason_when_a_rollout_limit_holds(
    api: Api, reconciler: Reconciler, repo: PolicyRepo
) -> None:
    """With maxConcurrent reached the planner issues nothing, and explain says why instead of "now"."""
    repo.write(
        "policies/state.yaml",
        POLICY.replace("  reboot: never\n", "  reboot: never\n  rollout: {maxConcurrent: 1}\n"),
    )
    repo.commit("one install at a time")
    first, first_auth = await api.enroll("web-01")
    second, second_auth = await api.enroll("web-02")
    for device, auth in ((first, first_auth), (second, second_auth)):
        await report(api, device, auth, scan_body(api.clock()))
    applied(reconciler.reconcile())
    waiting = second if jobs_of(api, first) else first
    state, verdict = explained(reconciler, api, waiting)[PATCH]
    assert ("missing", []) == (state, [j for j in jobs_of(api, waiting) if j[0] == "install"])
    assert verdict.endswith(
        "not installed now: PatchWindow acme/retail/daily has 1 install(s) running "
        "(rollout.maxConcurrent); it starts when one finishes; will be installed in PatchWindow "
        "acme/retail/daily at 2026-11-21 09:00Z"
    )


async def test_a_device_silent_with_an_install_job_raises_an_alert_naming_it(
    api: Api, reconciler: Reconciler
) -> None:
    """Silent after taking its install job: AgentOfflineInWindow names the device during the window, and resolves when it is back."""
    device, auth = await api.enroll()
    await report(api, device, auth, scan_body(api.clock()))
    applied(reconciler.reconcile())
    job = await take_install(api, device, auth)
    await event(api, job, auth, state="downloading")
    api.clock.advance(minutes=3)  # two poll intervals (60 s) and more without a word
    applied(reconciler.reconcile())
    (download,) = await alerts(api, "DownloadInitiated")
    assert f"download of 1 patch(es) initiated on web-01 (job {job})" == download["message"]
    (silent,) = await alerts(api, "AgentOfflineInWindow")
    assert (
        f"web-01 went silent (last seen 2026-11-20 09:00Z) during PatchWindow acme/retail/daily "
        f"with install job {job} downloading",
        device,
        None,
    ) == (silent["message"], silent["deviceId"], silent["resolvedAt"])
    applied(reconciler.reconcile())
    assert 1 == len(await alerts(api, "AgentOfflineInWindow"))  # raised once, not every pass
    api.clock.advance(minutes=1)
    await report(api, device, auth, {})  # back
    applied(reconciler.reconcile())
    (silent,) = await alerts(api, "AgentOfflineInWindow")
    assert "2026-11-20T09:04:00+00:00" == silent["resolvedAt"]


async def test_a_policy_invalid_alert_is_resolved_by_the_fix(
    api: Api, reconciler: Reconciler, repo: PolicyRepo
) -> None:
    """PolicyInvalid is open while the head does not validate and resolved when a fix is applied."""
    applied(reconciler.reconcile())
    repo.write("policies/broken.yaml", "kind: [\n")
    repo.commit("broken")
    assert "policy-invalid" == reconciler.reconcile().result
    (alert,) = await alerts(api, "PolicyInvalid")
    assert alert["resolvedAt"] is None
    api.clock.advance(minutes=5)
    repo.remove("policies/broken.yaml")
    repo.commit("fix")
    applied(reconciler.reconcile())
    (alert,) = await alerts(api, "PolicyInvalid")
    assert "2026-11-20T09:05:00+00:00" == alert["resolvedAt"]


async def test_a_new_bad_revision_resolves_the_previous_ones_alert(
    api: Api, reconciler: Reconciler, repo: PolicyRepo
) -> None:
    """Only the head's PolicyInvalid stays open: the branch moved past the older bad revision."""
    applied(reconciler.reconcile())
    for name in ("a", "b"):
        repo.write(f"policies/{name}.yaml", "kind: [\n")
        repo.commit(f"broken {name}")
        reconciler.reconcile()
        api.clock.advance(minutes=1)
    older, newer = sorted(await alerts(api, "PolicyInvalid"), key=lambda a: a["id"])
    assert ("2026-11-20T09:01:00+00:00", None) == (older["resolvedAt"], newer["resolvedAt"])


@pytest.mark.parametrize("scan_first", [True, False], ids=["report-first", "reconcile-first"])
async def test_a_fresh_scan_supersedes_a_pending_scan_job(
    api: Api,
    reconciler: Reconciler,
    scan_first: bool,
) -> None:
    """Whichever came first, the agent's own scan or the pass that issued the enrolment scan, the next pass issues the install."""
    device, auth = await api.enroll()
    if scan_first:
        await report(api, device, auth, scan_body(api.clock()))
    else:
        applied(reconciler.reconcile())
        assert [("scan", "pending", "initial scan after enrolment")] == jobs_of(api, device)
        api.clock.advance(seconds=10)
        await report(api, device, auth, scan_body(api.clock()))
    applied(reconciler.reconcile())
    found = [(kind, state) for kind, state, _ in jobs_of(api, device)]
    expected = (
        [("install", "pending")]
        if scan_first
        else [
            ("scan", "cancelled"),
            ("install", "pending"),
        ]
    )
    assert expected == found
    if not scan_first:
        j = schema.jobs.c
        with api.store.read() as conn:
            reason = conn.execute(
                sa.select(j.end_reason).where(j.device_id == device, j.kind == "scan")
            ).scalar_one()
        assert "superseded" == reason


async def test_readiness_and_status_agree_on_the_applied_revision(
    api: Api, repo: PolicyRepo, reconciler: Reconciler, tmp_path: Path
) -> None:
    """After a restart with the repository away, /readyz and `patchctl status` name the same last applied revision."""
    good = applied(reconciler.reconcile()).applied_revision
    repo.path.rename(tmp_path / "away")
    restarted = Reconciler(
        store=api.store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=api.clock,
    )
    assert "source-error" == restarted.reconcile().result
    ready = (await api.client.get("/readyz")).json()
    with api.store.read() as conn:
        summary = runtime_status.summary(conn, now=api.clock())
    assert (good, good) == (ready["lastAppliedRevision"], summary["source"]["lastAppliedRevision"])
    assert good is not None
