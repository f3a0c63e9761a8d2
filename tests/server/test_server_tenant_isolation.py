"""Nobody sees what their token does not cover: every read endpoint of the OpenAPI document and
the dashboard, walked with a read token per tenant over a reconciled two-client fleet, show each
tenant its own devices, patches, policy documents and authors, and nothing of the other's
(issue 11, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import git
import pytest

from controller.feeds import native
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.store import alerts as alert_store
from controller.store import catalogue, jobs
from controller.store.job_states import JobKind
from controller.testing import PolicyRepo

if TYPE_CHECKING:
    from server.conftest import Api

    from controller.testing import SettableClock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
RETAIL_AUTHOR = git.Actor("Rita Retail", "rita@retail.example")
LOGISTICS_AUTHOR = git.Actor("Lars Logistics", "lars@logistics.example")
APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: {name}, tenant: {tenant}}}
spec:
  patches: [{patch}]
  targets: {{groups: [{group}]}}
  reason: {reason}
  ticket: {ticket}
"""
# What each client owns; the walk must find every marker for its owner and none for the other.
CLIENTS = {
    "acme/retail": {
        "host": "ret-web-07",
        "os": {"family": "linux", "name": "Ubuntu", "version": "24.04"},
        "labels": {"role": "web"},
        "missing": ["USN-7123-1", "USN-6791-1"],
        "approval": "retail-openssl-rush",
        "reason": "retail-only reason text",
        "ticket": "RET-4711",
        "group": "linux-web",
        "author": RETAIL_AUTHOR,
    },
    "acme/logistics": {
        "host": "log-db-09",
        "os": {"family": "linux", "name": "Red Hat Enterprise Linux", "version": "9"},
        "labels": {"role": "db"},
        "missing": ["RHSA-2026:1234", "RHSA-2025:100"],
        "approval": "logistics-openssl-rush",
        "reason": "logistics-only reason text",
        "ticket": "LOG-4802",
        "group": "linux-db",
        "author": LOGISTICS_AUTHOR,
    },
}


# Another partner in the same repository: its Tenant document (display name, clients) is its
# own, like any of its objects, and no acme client may read it.
OTHER_PARTNER = """\
---
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: northwind}
spec: {displayName: Northwind Traders, clients: [depot]}
"""
OTHER_PARTNER_MARKERS = ("Northwind Traders", "depot", "northwind")


def markers(tenant: str, device_id: str) -> dict[str, str]:
    """The strings that only `tenant`'s answers may contain (its client name: the partner's
    Tenant document lists its clients, so it is the partner's, not each client's)."""
    client = CLIENTS[tenant]
    return {
        "client name": tenant.rpartition("/")[2],
        "device id": device_id,
        "device name": str(client["host"]),
        "pending patch": str(client["missing"][1]),  # type: ignore[index]
        "approval name": str(client["approval"]),
        "approval reason": str(client["reason"]),
        "ticket": str(client["ticket"]),
        "author": client["author"].email,  # type: ignore[union-attr]
    }


# Query parameters an endpoint requires. The plan needs the reconcile loop, which this app does
# not run, so it answers 503 here; its scoping is walked with the loop in test_server_plan_api.py.
REQUIRED_QUERY = {"/api/v1/plan": {"base": "main", "head": "main"}}
NEEDS_THE_LOOP = {"/api/v1/plan", "/api/v1/devices/{device_id}/explain"}
# Answers that list public feed data, the same for every token: the catalogue names every
# published patch id, and says nothing about which tenant misses one.
PUBLIC_MARKERS = {"/api/v1/catalogue": {"pending patch"}, "/api/v1/patches": {"pending patch"}}


async def walk(api: Api, token: str, device_id: str, alert_id: int) -> dict[str, str]:
    """Every GET endpoint of the OpenAPI document (path parameters filled with the caller's own
    device and alert) and every dashboard page (the drill-down ones with the caller's own device,
    alert and job), as text, by path."""
    headers = {"Authorization": f"Bearer {token}"}
    document = (await api.client.get("/openapi.json")).json()
    own_jobs = (await api.client.get("/api/v1/jobs", headers=headers)).json()["jobs"]
    answers = {}
    for path, operations in document["paths"].items():
        if "get" not in operations:
            continue
        url = (
            path.replace("{device_id}", device_id)
            .replace("{device}", device_id)
            .replace("{alert_id}", str(alert_id))
            .replace("{job_id}", own_jobs[0]["id"])
        )
        assert "{" not in url, f"no value for a path parameter of {path}"
        answer = await api.client.get(url, params=REQUIRED_QUERY.get(path), headers=headers)
        allowed = {200, 403} | ({503} if path in NEEDS_THE_LOOP else set())
        assert answer.status_code in allowed, (path, answer.status_code, answer.text)
        answers[path] = answer.text
    listed = await api.client.get("/api/v1/jobs", params={"device": device_id}, headers=headers)
    job_id = listed.json()["jobs"][0]["id"]
    for page in ("/", "/alerts", f"/alerts/{alert_id}", "/devices", f"/devices/{device_id}",
                 f"/jobs/{job_id}"):  # fmt: skip
        dashboard = await api.client.get(page, headers=headers)
        assert 200 == dashboard.status_code, (page, dashboard.text)
        answers[f"dashboard {page}"] = dashboard.text
    return answers


@pytest.fixture
def fleet_repo(tmp_path: Path) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "repo")
    repo.copy_example()
    tenants = repo.path / "inventory" / "tenants.yaml"
    tenants.write_text(tenants.read_text(encoding="utf-8") + OTHER_PARTNER, encoding="utf-8")
    repo.commit("the example repository, and a second partner")
    for tenant, client in CLIENTS.items():
        repo.write(
            f"policies/approvals/{client['approval']}.yaml",
            APPROVAL.format(
                name=client["approval"],
                tenant=tenant,
                patch=client["missing"][0],  # type: ignore[index]
                group=client["group"],
                reason=client["reason"],
                ticket=client["ticket"],
            ),
        )
        repo.commit(f"approve for {tenant}", author=client["author"])  # type: ignore[arg-type]
    return repo


async def test_every_read_answer_is_scoped_to_the_token(
    api: Api, clock: SettableClock, fleet_repo: PolicyRepo, tmp_path: Path
) -> None:
    """A client's token finds its own devices, pending patches, approvals, reasons, tickets and
    authors in the read API and the dashboard, and none of the other client's."""
    parsed = native.parse_file(
        ROOT / "feeds" / "example-catalogue.json", name="example-catalogue", release=None
    )
    catalogue.upsert_records(api.store, parsed.records)
    device_ids = {}
    for tenant, client in CLIENTS.items():
        device, auth = await api.enroll(
            str(client["host"]), tenant, os=client["os"], labels=client["labels"]
        )
        scan = {
            "scannedAt": clock().isoformat(),
            "rebootRequired": True,
            "missing": [{"id": p} for p in client["missing"]],  # type: ignore[attr-defined]
            "installed": [],
        }
        answer = await api.client.post(
            f"/api/v1/devices/{device}/report", headers=auth, json={"scan": scan}
        )
        assert 200 == answer.status_code, answer.text
        device_ids[tenant] = device
        with api.store.write() as conn:  # a job each, for GET /jobs/{job_id}
            job = jobs.NewJob(
                id=f"install-{client['host']}",
                device_id=device,
                tenant=tenant,
                kind=JobKind.INSTALL,
                revision="main@sha1:0",
                patch_ids=(str(client["missing"][1]),),  # type: ignore[index]
            )
            jobs.insert_jobs(conn, [job], now=clock())
    reconciler = Reconciler(
        store=api.store,
        source=PolicySource(str(fleet_repo.path), "main", tmp_path / "state"),
        clock=clock,
    )
    assert "applied" == reconciler.reconcile().result
    # a broken commit to a logistics file: its PolicyInvalid alert and trail entry have no
    # tenant, and must not quote the file to retail
    fleet_repo.write(
        "policies/approvals/logistics-openssl-rush.yaml",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: logistics-openssl-rush, "
        "tenant: acme/logistics}\nspec: {patches: [RHSA-2026:1234], bogus: LOG-4802}\n",
    )
    fleet_repo.commit("break it", author=LOGISTICS_AUTHOR)
    assert "policy-invalid" == reconciler.reconcile().result

    alert_ids = {tenant: own_alert(api, tenant, device_ids[tenant]) for tenant in CLIENTS}
    seen = {
        tenant: await walk(api, api.token(tenant), device_ids[tenant], alert_ids[tenant])
        for tenant in CLIENTS
    }

    for tenant, answers in seen.items():
        (other,) = set(CLIENTS) - {tenant}
        text = "\n".join(answers.values())
        own = markers(tenant, device_ids[tenant])
        foreign = markers(other, device_ids[other])
        assert {} == {what: m for what, m in own.items() if m not in text}, f"{tenant} misses own"
        leaks = {
            (what, path)
            for what, marker in foreign.items()
            for path, body in answers.items()
            if marker in body and what not in PUBLIC_MARKERS.get(path, set())
        }
        assert set() == leaks, f"{tenant} sees {other}'s data"
        partner = {
            (m, path) for m in OTHER_PARTNER_MARKERS for path, b in answers.items() if m in b
        }
        assert set() == partner, f"{tenant} sees another partner's data"


def own_alert(api: Api, tenant: str, device_id: str) -> int:
    """An alert and a finished install job about the client's device (the alert and job pages
    must show them, and only to it); the alert's id."""
    with api.store.write() as conn:
        jobs.insert_jobs(
            conn,
            [
                jobs.NewJob(
                    id=f"walk-{device_id}",
                    device_id=device_id,
                    tenant=tenant,
                    kind=JobKind.INSTALL,
                    revision="main@sha1:" + "0" * 40,
                    patch_ids=tuple(CLIENTS[tenant]["missing"]),  # type: ignore[arg-type]
                )
            ],
            now=api.clock(),
        )
        alert_store.add_alert(
            conn,
            alert_store.NewAlert(
                kind="RebootPending",
                severity="warning",
                message="Patching completed and need to reboot.",
                tenant=tenant,
                device_id=device_id,
            ),
            now=api.clock(),
        )
        found = alert_store.list_alerts(
            conn, scope=tenant, filters=alert_store.AlertFilter(device=device_id), limit=1
        )
    return int(found[0]["id"])


async def test_a_foreign_device_is_not_found(api: Api) -> None:
    """A client's token asking for the other client's device by id gets 404, not the device."""
    device, _ = await api.enroll("log-db-09", "acme/logistics")
    answer = await api.client.get(
        f"/api/v1/devices/{device}", headers={"Authorization": f"Bearer {api.token('acme/retail')}"}
    )
    assert 404 == answer.status_code
    assert "log-db-09" not in answer.text
