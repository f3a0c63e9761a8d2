"""The read API: tenant scoping both ways, device detail with patch states, service probes."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from controller.core.patches import PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.store import alerts as alert_store
from controller.store import audit as audit_store
from controller.store import catalogue, schema
from controller.store import status as status_store
from controller.store.tokens import TokenKind

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def fleet(api) -> dict[str, str]:
    """One device in each of acme (partner), acme/retail and acme/logistics."""
    return {
        tenant: (await api.enroll(f"host-{tenant.replace('/', '-')}", tenant))[0]
        for tenant in ("acme", "acme/retail", "acme/logistics")
    }


async def names(api, token: str, **params: str) -> list[str]:
    answer = await api.client.get("/api/v1/devices", headers=bearer(token), params=params)
    assert 200 == answer.status_code, answer.text
    return [d["tenant"] for d in answer.json()["devices"]]


async def test_partner_token_sees_its_clients(api) -> None:
    """A partner's read token lists the partner's devices and every client's."""
    await fleet(api)
    assert ["acme", "acme/logistics", "acme/retail"] == await names(api, api.token("acme"))


async def test_client_token_sees_only_itself(api) -> None:
    """A client's read token lists only that client's devices, and cannot widen its scope."""
    devices = await fleet(api)
    token = api.token("acme/retail")
    outside = await api.client.get(
        "/api/v1/devices", headers=bearer(token), params={"tenant": "acme"}
    )
    sibling = await api.client.get(
        f"/api/v1/devices/{devices['acme/logistics']}", headers=bearer(token)
    )
    assert ["acme/retail"] == await names(api, token)
    assert (403, 404) == (outside.status_code, sibling.status_code)
    assert "outside this token's scope" in outside.json()["message"]


async def test_partner_can_narrow_to_a_client(api) -> None:
    """A partner token may narrow a listing to one of its clients."""
    await fleet(api)
    assert ["acme/logistics"] == await names(api, api.token("acme"), tenant="acme/logistics")


async def test_other_partners_see_nothing(api) -> None:
    """Another partner's token sees none of acme's devices."""
    devices = await fleet(api)
    token = api.token("globex")
    detail = await api.client.get(f"/api/v1/devices/{devices['acme']}", headers=bearer(token))
    assert [] == await names(api, token)
    assert 404 == detail.status_code


async def test_device_tokens_cannot_read(api) -> None:
    """The read API refuses device tokens and missing tokens."""
    _, auth = await api.enroll()
    with_device = await api.client.get("/api/v1/devices", headers=auth)
    without = await api.client.get("/api/v1/devices")
    assert (403, 401) == (with_device.status_code, without.status_code)


async def test_device_detail_lists_patches_with_state_source_and_catalogue(api) -> None:
    """A device shows every patch with its state and source, enriched from the catalogue."""
    catalogue.upsert_records(
        api.store,
        [
            PatchRecord(
                id="USN-7123-1",
                title="OpenSSL vulnerabilities",
                os=OsFamily.LINUX,
                classification=Classification.SECURITY,
                severity=Severity.IMPORTANT,
            )
        ],
        now=api.clock(),
    )
    device, auth = await api.enroll()
    await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth,
        json={
            "facts": {"uptime": 100, "custom": {"rack": "B4"}},
            "scan": {
                "scannedAt": api.clock().isoformat(),
                "rebootRequired": True,
                "missing": [
                    {"id": "USN-7123-1", "severity": "High"},
                    {"id": "USN-9999-1", "title": "Agent-only advisory", "severity": "Low"},
                ],
                "installed": [{"id": "USN-6000-1", "installedAt": "2026-10-01T00:00:00Z"}],
            },
            "inventory": {
                "kernel": "6.8.0",
                "packages": [{"name": "openssl", "version": "3.0.13", "arch": "amd64"}],
            },
        },
    )
    answer = await api.client.get(f"/api/v1/devices/{device}", headers=bearer(api.token("acme")))
    body = answer.json()
    patches = {p["id"]: p for p in body["patches"]}
    assert 200 == answer.status_code
    assert ({"uptime": 100, "custom": {"rack": "B4"}}, True, 1) == (
        body["facts"],
        body["rebootRequired"],
        body["inventory"]["packageCount"],
    )
    assert ("missing", "agent", "OpenSSL vulnerabilities", "important", True) == (
        patches["USN-7123-1"]["state"],
        patches["USN-7123-1"]["source"],
        patches["USN-7123-1"]["title"],
        patches["USN-7123-1"]["severity"],
        patches["USN-7123-1"]["inCatalogue"],
    )
    assert ("Agent-only advisory", "Low", False) == (
        patches["USN-9999-1"]["title"],
        patches["USN-9999-1"]["severity"],
        patches["USN-9999-1"]["inCatalogue"],
    )
    assert ("installed", "2026-10-01T00:00:00Z") == (
        patches["USN-6000-1"]["state"],
        patches["USN-6000-1"]["installedAt"],
    )


async def test_alerts_and_audit_are_scoped(api) -> None:
    """Alerts and audit events show for their tenant scope and, without a tenant, to everyone."""
    now = api.clock()
    with api.store.write() as conn:
        for tenant in ("acme/retail", "acme/logistics", None):
            alert_store.add_alert(
                conn,
                alert_store.NewAlert(
                    kind="InstallFailed",
                    severity="critical",
                    message=f"for {tenant}",
                    tenant=tenant,
                ),
                now=now,
            )
            audit_store.add_audit_event(
                conn,
                audit_store.NewAuditEvent(actor="alice", action="approval.added", tenant=tenant),
                now=now,
            )
    token = bearer(api.token("acme/retail"))
    alerts = (await api.client.get("/api/v1/alerts", headers=token)).json()["alerts"]
    audit = (await api.client.get("/api/v1/audit", headers=token)).json()["events"]
    assert {"acme/retail", None} == {a["tenant"] for a in alerts}
    assert {"acme/retail", None} == {e["tenant"] for e in audit}


async def test_status_counts_the_scope(api) -> None:
    """Status counts the scope's devices, online ones, and shows the revisions, with the
    policy errors counted rather than quoted."""
    await fleet(api)
    with api.store.write() as conn:
        status_store.set_status(
            conn,
            "source",
            {
                "lastAppliedRevision": "main@sha1:abc",
                "lastAttemptedRevision": "main@sha1:def",
                "errors": ["policies/approvals/globex.yaml:3:1: spec: boom"],
            },
            now=api.clock(),
        )
    api.clock.advance(minutes=30)
    await api.enroll("fresh", "acme/retail")
    body = (await api.client.get("/api/v1/status", headers=bearer(api.token("acme/retail")))).json()
    assert ({"total": 2, "online": 1, "seenLastDay": 2}, "main@sha1:abc", "main@sha1:def", 1) == (
        body["devices"],
        body["source"]["lastAppliedRevision"],
        body["source"]["lastAttemptedRevision"],
        body["source"]["errorCount"],
    )
    assert "globex" not in str(body)


async def test_jobs_and_compliance_listings_answer(api) -> None:
    """Jobs and compliance list what is stored, scoped (empty here)."""
    token = bearer(api.token("acme"))
    listed = (await api.client.get("/api/v1/jobs", headers=token)).json()
    compliance = (await api.client.get("/api/v1/compliance", headers=token)).json()
    assert ([], []) == (listed["jobs"], compliance["compliance"])


async def test_probes_metrics_and_openapi(api) -> None:
    """Health, readiness, metrics and the OpenAPI document answer without a token."""
    device, auth = await api.enroll()
    await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json={})
    health = await api.client.get("/healthz")
    ready = await api.client.get("/readyz")
    metrics = await api.client.get("/metrics")
    openapi = (await api.client.get("/openapi.json")).json()
    hook = await api.client.post("/api/v1/hooks/git", json={})
    assert (200, 200, 503) == (health.status_code, ready.status_code, hook.status_code)
    assert "PATCHCTL_WEBHOOK_SECRET" in hook.json()["message"]
    assert "ok" == ready.json()["database"]
    assert 'patchctl_reports_total{scan="none"} 1' in metrics.text
    assert 'route="/api/v1/devices/{device_id}/report"' in metrics.text
    report = openapi["paths"]["/api/v1/devices/{device_id}/report"]["post"]
    assert (
        "#/components/schemas/ReportRequest"
        == (report["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    )
    assert "ReportRequest" in openapi["components"]["schemas"]
    assert "/api/v1/enroll" in openapi["paths"]


async def test_tokens_never_reach_the_logs(api) -> None:
    """Enrolment, reports and refused calls log ids and reasons, never a token."""
    secrets = [api.token("acme", kind) for kind in (TokenKind.ENROLLMENT, TokenKind.READ)]
    with capture_logs() as logs:
        device, auth = await api.enroll()
        await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json={"bad": 1})
        await api.client.get("/api/v1/devices", headers={"Authorization": "Bearer pcr_wrong"})
        await api.client.post("/api/v1/enroll", json=api.enroll_body(secrets[1], "x"))
    device_token = auth["Authorization"].removeprefix("Bearer ")
    text = repr(logs)
    assert any(entry["event"] == "enrolled" for entry in logs)
    assert [] == [s for s in [*secrets, device_token, "pcr_wrong"] if s in text]


async def test_readiness_names_the_applied_revision(api) -> None:
    """/readyz shows the revision the reconciler last applied (from its `source` status)."""
    with api.store.write() as conn:
        status_store.set_status(
            conn, "source", {"lastAppliedRevision": "main@sha1:abc"}, now=api.clock()
        )
    ready = (await api.client.get("/readyz")).json()
    assert "main@sha1:abc" == ready["lastAppliedRevision"]


async def test_online_follows_each_devices_own_poll_interval(api) -> None:
    """The planner's rule (seen within two of the device's poll intervals), not the service's
    current default, in the device list, the device detail and the status count."""
    device, _ = await api.enroll("slow-poller", "acme/retail")
    await api.enroll("fast-poller", "acme/retail")
    with api.store.write() as conn:  # enrolled when the service told agents to poll hourly
        conn.execute(
            schema.devices.update().where(schema.devices.c.id == device).values(poll_interval=3600)
        )
    api.clock.advance(minutes=90)
    auth = bearer(api.token("acme/retail"))
    listed = (await api.client.get("/api/v1/devices", headers=auth)).json()["devices"]
    detail = (await api.client.get(f"/api/v1/devices/{device}", headers=auth)).json()
    status = (await api.client.get("/api/v1/status", headers=auth)).json()
    assert ({"slow-poller": True, "fast-poller": False}, True, 1) == (
        {d["name"]: d["online"] for d in listed},
        detail["online"],
        status["devices"]["online"],
    )
