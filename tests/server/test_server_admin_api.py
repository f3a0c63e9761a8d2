"""The admin API over the real app on each engine: admin tokens are tenant-scoped (404 outside
the scope), read tokens are refused for writes (403), every write is audited, and each operation
changes exactly what docs/operations.md says (issue 16 item 4)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from controller.store import alerts as alert_store
from controller.store import jobs, schema, tokens
from controller.store.job_states import JobKind, JobState

if TYPE_CHECKING:
    from server.conftest import Api

pytestmark = pytest.mark.anyio

ADMIN = tokens.TokenKind.ADMIN


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def add_job(api: Api, device_id: str, job_id: str, *, tenant: str = "acme/retail") -> None:
    with api.store.write() as conn:
        jobs.insert_jobs(
            conn,
            [
                jobs.NewJob(
                    id=job_id,
                    device_id=device_id,
                    tenant=tenant,
                    kind=JobKind.INSTALL,
                    revision="main@sha1:" + "a" * 40,
                    patch_ids=("USN-7123-1",),
                    payload={"reboot": "if-required"},
                    window_key="acme/retail/sunday@2026-11-22T02:00",
                    deadline=api.clock() + timedelta(hours=3),
                    run_timeout_s=3600,
                )
            ],
            now=api.clock(),
        )


def set_job_state(api: Api, job_id: str, state: JobState) -> None:
    with api.store.write() as conn:
        conn.execute(
            schema.jobs.update().where(schema.jobs.c.id == job_id).values(state=state.value)
        )


def add_alert(api: Api, *, tenant: str | None, device_id: str | None = None) -> int:
    with api.store.write() as conn:
        alert_store.add_alert(
            conn,
            alert_store.NewAlert(
                kind="InstallFailed",
                severity="critical",
                message="install failed",
                tenant=tenant,
                device_id=device_id,
            ),
            now=api.clock(),
        )
        return int(conn.execute(sa.select(sa.func.max(schema.alerts.c.id))).scalar_one())


def row(api: Api, table: sa.Table, key: Any) -> dict[str, Any]:
    with api.store.read() as conn:
        found = conn.execute(sa.select(table).where(table.c.id == key)).mappings().one()
        return dict(found)


async def fleet(api: Api) -> dict[str, Any]:
    """A device in each client of acme, a pending job and an alert on each."""
    retail, retail_auth = await api.enroll("ret-01", "acme/retail")
    logistics, logistics_auth = await api.enroll("log-01", "acme/logistics")
    add_job(api, retail, "install-retail")
    add_job(api, logistics, "install-logistics", tenant="acme/logistics")
    return {
        "retail": retail,
        "retail_auth": retail_auth,
        "logistics": logistics,
        "logistics_auth": logistics_auth,
        "retail_alert": add_alert(api, tenant="acme/retail", device_id=retail),
        "logistics_alert": add_alert(api, tenant="acme/logistics", device_id=logistics),
    }


def writes(ids: dict[str, Any], side: str) -> list[tuple[str, str]]:
    """Every admin write against the objects of one client (`retail` or `logistics`)."""
    return [
        ("POST", f"/api/v1/devices/{ids[side]}/retire"),
        ("POST", f"/api/v1/devices/{ids[side]}/rotate-token"),
        ("POST", f"/api/v1/jobs/install-{side}/cancel"),
        ("POST", f"/api/v1/jobs/install-{side}/retry"),
        ("POST", f"/api/v1/alerts/{ids[side + '_alert']}/acknowledge"),
        ("POST", f"/api/v1/alerts/{ids[side + '_alert']}/resolve"),
    ]


async def test_a_read_token_is_refused_for_every_write(api: Api) -> None:
    """Every admin write answers 403 to a read token of the object's own tenant, saying which
    token it needs."""
    ids = await fleet(api)
    reader = bearer(api.token("acme/retail"))
    answers = [
        (path, await api.client.request(method, path, headers=reader))
        for method, path in [*writes(ids, "retail"), ("GET", "/api/v1/tokens")]
    ]
    assert [(path, 403) for path, _ in answers] == [(p, a.status_code) for p, a in answers]
    needed = "this call needs an admin token, not a read token"
    assert all(needed in answer.text for _, answer in answers)


async def test_a_client_admin_cannot_touch_a_sibling(api: Api) -> None:
    """A retail admin gets 404 for the logistics device, job, alert and token, and nothing
    of logistics changes."""
    ids = await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    with api.store.read() as conn:
        sibling_token = (
            conn.execute(
                sa.select(schema.tokens.c.id).where(schema.tokens.c.tenant == "acme/logistics")
            )
            .scalars()
            .first()
        )
    targets = [*writes(ids, "logistics"), ("POST", f"/api/v1/tokens/{sibling_token}/revoke")]
    answers = [
        (path, (await api.client.request(method, path, headers=admin)).status_code)
        for method, path in targets
    ]
    poll = await api.client.get(
        f"/api/v1/devices/{ids['logistics']}/jobs", headers=ids["logistics_auth"]
    )
    assert [(path, 404) for _, path in targets] == answers
    assert ["install-logistics"] == [job["id"] for job in poll.json()["jobs"]]
    assert None is row(api, schema.alerts, ids["logistics_alert"])["acknowledged_at"]
    assert None is row(api, schema.devices, ids["logistics"])["retired_at"]


async def test_a_404_does_not_reveal_the_other_tenants_ids(api: Api) -> None:
    """The answer for a sibling's device is the answer for an unknown id."""
    ids = await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    sibling = await api.client.post(f"/api/v1/devices/{ids['logistics']}/retire", headers=admin)
    unknown = await api.client.post("/api/v1/devices/no-such-device/retire", headers=admin)
    assert sibling.json()["message"].replace(ids["logistics"], "X") == unknown.json()[
        "message"
    ].replace("no-such-device", "X")


async def test_a_partner_admin_reaches_its_clients(api: Api) -> None:
    """An acme admin acknowledges a retail alert and reads both clients' devices."""
    ids = await fleet(api)
    admin = bearer(api.token("acme", ADMIN))
    done = await api.client.post(f"/api/v1/alerts/{ids['retail_alert']}/acknowledge", headers=admin)
    listed = await api.client.get("/api/v1/devices", headers=admin)
    assert 200 == done.status_code
    assert ["ret-01", "log-01"] == sorted(
        (d["name"] for d in listed.json()["devices"]), reverse=True
    )


async def test_retire_cancels_jobs_revokes_the_token_keeps_history(api: Api) -> None:
    """Retiring cancels the pending job, revokes the device token, hides the device from the
    listing (unless asked), keeps its jobs and alerts; re-enrolling the name brings it back."""
    ids = await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    answer = await api.client.post(
        "/api/v1/devices/ret-01/retire", headers=admin, json={"reason": "decommissioned"}
    )
    poll = await api.client.get(f"/api/v1/devices/{ids['retail']}/jobs", headers=ids["retail_auth"])
    listed = await api.client.get("/api/v1/devices", headers=admin)
    with_retired = await api.client.get("/api/v1/devices?retired=true", headers=admin)
    again = await api.client.post("/api/v1/devices/ret-01/retire", headers=admin)
    job = row(api, schema.jobs, "install-retail")
    assert 200 == answer.status_code, answer.text
    assert {
        "deviceId": ids["retail"],
        "name": "ret-01",
        "tenant": "acme/retail",
        "cancelledJobs": ["install-retail"],
    } == answer.json()
    assert 401 == poll.status_code
    assert [] == listed.json()["devices"]
    assert [api.clock().isoformat()] == [d["retiredAt"] for d in with_retired.json()["devices"]]
    assert 409 == again.status_code
    assert ("cancelled", "device-retired", "pending") == (
        job["state"],
        job["end_reason"],
        job["end_state"],
    )
    assert ids["retail_alert"] == row(api, schema.alerts, ids["retail_alert"])["id"]
    device_id, _ = await api.enroll("ret-01", "acme/retail")
    assert ids["retail"] == device_id
    assert None is row(api, schema.devices, device_id)["retired_at"]


async def test_rotate_token_replaces_the_device_token(api: Api) -> None:
    """The old device token is refused at once, the new one polls."""
    ids = await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    poll = f"/api/v1/devices/{ids['retail']}/jobs"
    assert 200 == (await api.client.get(poll, headers=ids["retail_auth"])).status_code
    answer = await api.client.post(f"/api/v1/devices/{ids['retail']}/rotate-token", headers=admin)
    secret = answer.json()["deviceToken"]
    old = await api.client.get(poll, headers=ids["retail_auth"])
    new = await api.client.get(poll, headers=bearer(secret))
    assert 200 == answer.status_code
    assert secret.startswith("pcd_")
    assert (401, 200) == (old.status_code, new.status_code)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (JobState.PENDING, 200),
        (JobState.DELIVERED, 200),
        (JobState.INSTALLING, 200),
        (JobState.SUCCEEDED, 409),
        (JobState.FAILED, 409),
        (JobState.CANCELLED, 409),
    ],
    ids=str,
)
async def test_cancel_only_unfinished_jobs(api: Api, state: JobState, status: int) -> None:
    """A job the agent has not finished is cancelled (and leaves the poll); a finished one 409."""
    ids = await fleet(api)
    set_job_state(api, "install-retail", state)
    admin = bearer(api.token("acme/retail", ADMIN))
    answer = await api.client.post("/api/v1/jobs/install-retail/cancel", headers=admin)
    job = row(api, schema.jobs, "install-retail")
    assert status == answer.status_code, answer.text
    if status == 200:
        assert {"id": "install-retail", "state": "cancelled", "previousState": state.value} == (
            answer.json()
        )
        assert ("cancelled", "cancelled-by-operator") == (job["state"], job["end_reason"])
        poll = await api.client.get(
            f"/api/v1/devices/{ids['retail']}/jobs", headers=ids["retail_auth"]
        )
        assert [] == poll.json()["jobs"]
    else:
        assert state.value == job["state"]


async def test_retry_issues_a_failed_job_again_once(api: Api) -> None:
    """A failed job is issued again as a new pending job with the same patches; a second retry
    of it and a retry of a pending job are refused with 409."""
    ids = await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    pending = await api.client.post("/api/v1/jobs/install-retail/retry", headers=admin)
    set_job_state(api, "install-retail", JobState.FAILED)
    first = await api.client.post("/api/v1/jobs/install-retail/retry", headers=admin)
    second = await api.client.post("/api/v1/jobs/install-retail/retry", headers=admin)
    poll = await api.client.get(f"/api/v1/devices/{ids['retail']}/jobs", headers=ids["retail_auth"])
    assert 409 == pending.status_code
    assert {"id": "install-retail", "retryJobId": "install-retry-1-retail"} == first.json()
    assert 409 == second.status_code
    assert "retried already as install-retry-1-retail" in second.json()["message"]
    assert [("install-retry-1-retail", ["USN-7123-1"])] == [
        (job["id"], job["patches"]) for job in poll.json()["jobs"]
    ]


async def test_acknowledge_and_resolve_fill_the_alert(api: Api) -> None:
    """Acknowledge fills who and when, resolve the resolution time; repeats answer 409."""
    ids = await fleet(api)
    secret = api.token("acme/retail", ADMIN)
    with api.store.read() as conn:
        token_id = tokens.authenticate(conn, secret, now=api.clock()).token_id  # type: ignore[union-attr]
    alert = f"/api/v1/alerts/{ids['retail_alert']}"
    acked = await api.client.post(f"{alert}/acknowledge", headers=bearer(secret))
    api.clock.advance(minutes=5)
    again = await api.client.post(f"{alert}/acknowledge", headers=bearer(secret))
    resolved = await api.client.post(f"{alert}/resolve", headers=bearer(secret))
    stored = row(api, schema.alerts, ids["retail_alert"])
    assert (200, 409, 200) == (acked.status_code, again.status_code, resolved.status_code)
    assert stored["acknowledged_at"] + timedelta(minutes=5) == stored["resolved_at"]
    assert f"admin token {token_id}" == stored["acknowledged_by"]


async def test_an_alert_of_every_tenant_is_not_closed_by_one_tenant(api: Api) -> None:
    """An alert without a tenant answers 409 to a tenant's admin and stays open."""
    alert = add_alert(api, tenant=None)
    admin = bearer(api.token("acme", ADMIN))
    answer = await api.client.post(f"/api/v1/alerts/{alert}/resolve", headers=admin)
    assert 409 == answer.status_code
    assert "concerns every tenant" in answer.json()["message"]
    assert None is row(api, schema.alerts, alert)["resolved_at"]


async def test_tokens_are_listed_and_revoked_within_the_scope(api: Api) -> None:
    """A retail admin lists retail's tokens only (no secrets) and revokes one, which stops
    working at once."""
    await fleet(api)
    admin = bearer(api.token("acme/retail", ADMIN))
    reader = api.token("acme/retail")
    listed = (await api.client.get("/api/v1/tokens", headers=admin)).json()
    reader_id = next(t["id"] for t in listed["tokens"] if t["kind"] == "read")
    revoked = await api.client.post(f"/api/v1/tokens/{reader_id}/revoke", headers=admin)
    refused = await api.client.get("/api/v1/devices", headers=bearer(reader))
    assert {"acme/retail"} == {t["tenant"] for t in listed["tokens"]}
    assert not any("secret" in key.lower() or "hash" in key.lower() for key in listed["tokens"][0])
    assert (200, 401) == (revoked.status_code, refused.status_code)


async def test_every_write_is_audited_with_the_token(api: Api) -> None:
    """Each admin write appends an audit event naming the token, the action, the object and the
    tenant, visible through the audit API of the scope."""
    ids = await fleet(api)
    secret = api.token("acme/retail", ADMIN)
    with api.store.write() as conn:
        conn.execute(schema.tokens.update().values(description="ops on call"))
        token_id = tokens.authenticate(conn, secret, now=api.clock()).token_id  # type: ignore[union-attr]
    admin = bearer(secret)
    set_job_state(api, "install-retail", JobState.FAILED)
    calls = [
        "/api/v1/jobs/install-retail/retry",
        "/api/v1/jobs/install-retry-1-retail/cancel",
        f"/api/v1/alerts/{ids['retail_alert']}/acknowledge",
        f"/api/v1/alerts/{ids['retail_alert']}/resolve",
        f"/api/v1/devices/{ids['retail']}/rotate-token",
        f"/api/v1/devices/{ids['retail']}/retire",
    ]
    for path in calls:
        assert 200 == (await api.client.post(path, headers=admin)).status_code, path
    trail = (await api.client.get("/api/v1/audit", headers=admin)).json()["events"]
    actor = f"admin token {token_id} (ops on call)"
    assert [
        ("job.retried", "job/install-retail"),
        ("job.cancelled", "job/install-retry-1-retail"),
        ("alert.acknowledged", f"alert/{ids['retail_alert']}"),
        ("alert.resolved", f"alert/{ids['retail_alert']}"),
        ("device.token-rotated", "device/ret-01"),
        ("device.retired", "device/ret-01"),
    ] == [(e["type"], e["object"]) for e in trail]
    assert {(actor, "acme/retail")} == {(e["actor"], e["tenant"]) for e in trail}


@pytest.mark.parametrize(
    ("body", "field"),
    [('{"reason": "x", "force": true}', "force"), ('{"reason": 7}', "reason")],
    ids=["unknown-field", "wrong-type"],
)
async def test_bodies_are_strict_and_name_the_field(api: Api, body: str, field: str) -> None:
    """A body with an unknown or mistyped field is refused with 422 naming it; nothing changes."""
    ids = await fleet(api)
    answer = await api.client.post(
        f"/api/v1/devices/{ids['retail']}/retire",
        headers=bearer(api.token("acme/retail", ADMIN)) | {"Content-Type": "application/json"},
        content=body,
    )
    assert 422 == answer.status_code
    assert [field] == [d["field"] for d in answer.json()["details"]]
    assert None is row(api, schema.devices, ids["retail"])["retired_at"]


async def test_the_admin_api_is_in_the_openapi_document(api: Api) -> None:
    """Every admin path is documented, with the AdminRequest body schema."""
    document = (await api.client.get("/openapi.json")).json()
    assert {
        "/api/v1/devices/{device}/retire",
        "/api/v1/devices/{device}/rotate-token",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}/revoke",
    } <= set(document["paths"])
    assert "AdminRequest" in document["components"]["schemas"]


async def test_an_enrolment_token_allows_its_max_uses(api: Api) -> None:
    """With max_uses 2, two enrolments pass and the third is refused with 403 token-used-up."""
    with api.store.write() as conn:
        issued = tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/retail", now=api.clock(),
            max_uses=2,
        )  # fmt: skip
    answers = [
        await api.client.post("/api/v1/enroll", json=api.enroll_body(issued.secret, host))
        for host in ("a-01", "a-02", "a-03")
    ]
    assert [200, 200, 403] == [a.status_code for a in answers]
    assert "token-used-up" == answers[2].json()["error"]
    assert "used up (2 of 2 enrolments)" in answers[2].json()["message"]
    with api.store.read() as conn:
        assert (2, 2) == tokens.token_uses(conn, issued.id)
        assert (
            2 == conn.execute(sa.select(sa.func.count()).select_from(schema.devices)).scalar_one()
        )


async def test_an_expired_enrolment_token_is_refused(api: Api) -> None:
    """An enrolment token past its expiry answers 401 and enrols nothing."""
    with api.store.write() as conn:
        issued = tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/retail", now=api.clock(),
            expires_at=api.clock() + timedelta(hours=1),
        )  # fmt: skip
    api.clock.advance(hours=1)
    answer = await api.client.post("/api/v1/enroll", json=api.enroll_body(issued.secret, "x-01"))
    assert 401 == answer.status_code
    assert "enrollmentToken" in answer.json()["message"]
