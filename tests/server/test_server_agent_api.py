"""The agent calls over HTTP: enrolment, reports, job polling and job events, and bad input."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from controller.store import jobs, schema, tokens
from controller.store.job_states import JobKind

pytestmark = pytest.mark.anyio


def scan(api, *missing: str, minutes: int = 0) -> dict[str, Any]:
    return {
        "scannedAt": (api.clock() + timedelta(minutes=minutes)).isoformat(),
        "rebootRequired": False,
        "missing": [{"id": p, "severity": "High"} for p in missing],
        "installed": [{"id": "USN-6000-1", "installedAt": "2026-10-01T00:00:00+00:00"}],
    }


def snapshot(api) -> list[Any]:
    """Everything an agent call may change."""
    with api.store.read() as conn:
        return [
            sorted(tuple(r) for r in conn.execute(sa.select(table)))
            for table in (schema.devices, schema.scans, schema.patch_states, schema.inventories)
        ]


async def test_enrol_then_report(api) -> None:
    """An enrolled device reports a scan and the store keeps it."""
    device, auth = await api.enroll()
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth,
        json={"facts": {"uptime": 42}, "scan": scan(api, "USN-7123-1")},
    )
    assert (200, "stored", True) == (
        answer.status_code,
        answer.json()["scan"],
        answer.json()["accepted"],
    )


async def test_re_enrolment_returns_the_same_device_and_a_new_token(api) -> None:
    """Re-enrolling a hostname gives the same id; the previous token stops working."""
    first, old_auth = await api.enroll("WEB-01")
    second, new_auth = await api.enroll("web-01")
    old = await api.client.post(f"/api/v1/devices/{first}/report", headers=old_auth, json={})
    new = await api.client.post(f"/api/v1/devices/{first}/report", headers=new_auth, json={})
    assert first == second
    assert (401, 200) == (old.status_code, new.status_code)


async def test_enrolment_needs_an_enrolment_token(api) -> None:
    """A read token or an unknown token cannot enrol a device."""
    for token in (api.token("acme"), "pce_not-a-token"):
        answer = await api.client.post("/api/v1/enroll", json=api.enroll_body(token, "web-09"))
        assert 401 == answer.status_code
        assert "enrollmentToken" in answer.json()["message"]
    assert [[], [], [], []] == snapshot(api)


async def test_replayed_report_changes_nothing(api) -> None:
    """Sending the same scan twice stores it once; an older scan is ignored."""
    device, auth = await api.enroll()
    body = {"scan": scan(api, "USN-7123-1")}
    await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json=body)
    before = snapshot(api)
    again = await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json=body)
    older = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth,
        json={"scan": scan(api, "USN-1", minutes=-60)},
    )
    after = snapshot(api)
    assert ("duplicate", "stale") == (again.json()["scan"], older.json()["scan"])
    assert before[1:] == after[1:]


BAD_REPORTS = [
    # (id, body or raw bytes, headers, status, words in the message)
    ("malformed-json", b'{"scan": ', {}, 400, "malformed JSON"),
    ("not-an-object", b"[1, 2]", {}, 422, "must be a JSON object"),
    ("unknown-field", {"sacn": {}}, {}, 422, "sacn: unknown field"),
    (
        "wrong-type",
        {"scan": {"scannedAt": "2026-11-20T09:00:00Z", "rebootRequired": "maybe"}},
        {},
        422,
        "scan.rebootRequired",
    ),
    (
        "naive-time",
        {"scan": {"scannedAt": "2026-11-20T09:00:00", "rebootRequired": False}},
        {},
        422,
        "scan.scannedAt",
    ),
    (
        "missing-id",
        {"scan": {"scannedAt": "2026-11-20T09:00:00Z", "rebootRequired": False, "missing": [{}]}},
        {},
        422,
        "scan.missing[0].id",
    ),
    (
        "duplicate-id",
        {
            "scan": {
                "scannedAt": "2026-11-20T09:00:00Z",
                "rebootRequired": False,
                "missing": [{"id": "KB1"}, {"id": "KB1"}],
            }
        },
        {},
        422,
        "appears twice",
    ),
    (
        "source-not-as-dpkg-prints-it",
        {
            "inventory": {
                "packages": [
                    {
                        "name": "telnet",
                        "version": "0.17",
                        "arch": "amd64",
                        "source": "inetutils 2:2.4",
                    }
                ]
            }
        },
        {},
        422,
        "inventory.packages[0].source",
    ),
    ("text-body", b"hello", {"content-type": "text/plain"}, 415, "Content-Type"),
    ("oversized", {"facts": {"custom": {"blob": "x" * 70_000}}}, {}, 413, "larger than"),
    ("no-token", {}, {"Authorization": ""}, 401, "missing bearer token"),
    ("wrong-token", {}, {"Authorization": "Bearer pcd_forged"}, 401, "not valid"),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [case[1:] for case in BAD_REPORTS],
    ids=[case[0] for case in BAD_REPORTS],
)
async def test_bad_reports_are_refused_and_change_nothing(
    api, body, headers, status, words
) -> None:
    """Each bad report gets a 4xx naming the problem, and the store is untouched."""
    device, auth = await api.enroll()
    before = snapshot(api)
    request_headers = auth | {"content-type": "application/json"} | headers
    if not request_headers.get("Authorization"):
        request_headers.pop("Authorization")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report", headers=request_headers, content=content
    )
    assert status == answer.status_code
    assert words in answer.json()["message"]
    assert before == snapshot(api)


async def test_chunked_oversized_body_is_refused(api) -> None:
    """A body without a length is counted as it arrives and refused past the limit."""
    device, auth = await api.enroll()

    async def chunks():
        yield b'{"facts": {"custom": {"blob": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}}}'

    answer = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth | {"content-type": "application/json"},
        content=chunks(),
    )
    assert 413 == answer.status_code


async def test_a_device_token_reaches_only_its_own_device(api) -> None:
    """Another device's report, jobs and job events are refused."""
    mine, auth = await api.enroll("web-01")
    other, _ = await api.enroll("web-02")
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [scan_job(other)], now=api.clock())
    before = snapshot(api)
    report = await api.client.post(f"/api/v1/devices/{other}/report", headers=auth, json={})
    polled = await api.client.get(f"/api/v1/devices/{other}/jobs", headers=auth)
    event = await api.client.post(
        f"/api/v1/jobs/scan-{other}/events", headers=auth, json={"state": "acked"}
    )
    assert (403, 403, 404) == (report.status_code, polled.status_code, event.status_code)
    assert mine != other
    assert before == snapshot(api)


async def test_unknown_device_is_refused(api) -> None:
    """A report for a device id no token belongs to is refused."""
    _, auth = await api.enroll()
    answer = await api.client.post("/api/v1/devices/no-such-device/report", headers=auth, json={})
    assert 403 == answer.status_code
    assert "another device" in answer.json()["message"]


async def test_read_tokens_cannot_make_agent_calls(api) -> None:
    """The agent calls need a device token, not a read token."""
    device, _ = await api.enroll()
    read = {"Authorization": f"Bearer {api.token('acme')}"}
    answer = await api.client.post(f"/api/v1/devices/{device}/report", headers=read, json={})
    assert 403 == answer.status_code
    assert "device token" in answer.json()["message"]


def scan_job(device: str, **extra: Any) -> jobs.NewJob:
    return jobs.NewJob(
        id=f"scan-{device}",
        device_id=device,
        tenant="acme/retail",
        kind=JobKind.SCAN,
        revision="main@sha1:0123",
        **extra,
    )


async def test_jobs_are_delivered_until_acknowledged_then_run(api) -> None:
    """A job is in every poll until acked; events move it to succeeded; replays change nothing."""
    device, auth = await api.enroll()
    install = jobs.NewJob(
        id="install-1",
        device_id=device,
        tenant="acme/retail",
        kind=JobKind.INSTALL,
        revision="main@sha1:0123",
        patch_ids=("USN-7123-1",),
        payload={"reboot": "never", "scripts": {"pre": {"name": "drain-node"}}},
        deadline=api.clock() + timedelta(hours=2),
    )
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [install], now=api.clock())
    url = f"/api/v1/devices/{device}/jobs"
    polls = [(await api.client.get(url, headers=auth)).json() for _ in range(2)]
    events = "/api/v1/jobs/install-1/events"
    answers = [
        await api.client.post(events, headers=auth, json=body)
        for body in (
            {"state": "acked", "seq": 1},
            {"state": "acked", "seq": 1},
            {"state": "installing", "seq": 2},
            {
                "state": "succeeded",
                "seq": 3,
                "patches": [{"id": "USN-7123-1", "result": "installed"}],
                "rebootRequired": False,
                "output": "ok",
            },
            {"state": "installing", "seq": 4},
        )
    ]
    after = (await api.client.get(url, headers=auth)).json()
    job = polls[0]["jobs"][0]
    assert ("install", ["USN-7123-1"], "never", "main@sha1:0123") == (
        job["kind"],
        job["patches"],
        job["reboot"],
        job["revision"],
    )
    assert {"pre": {"name": "drain-node"}} == job["scripts"]
    assert polls[0]["jobs"] == polls[1]["jobs"]
    assert [200, 200, 200, 200, 409] == [a.status_code for a in answers]
    assert ["applied", "duplicate", "applied", "applied"] == [
        a.json()["status"] for a in answers[:4]
    ]
    assert "already succeeded" in answers[4].json()["message"]
    assert [] == after["jobs"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "pending"}, "state"),
        ({"state": "acked", "seq": -1}, "seq"),
        (
            {"state": "failed", "patches": [{"id": "KB1", "result": "exploded"}]},
            "patches[0].result",
        ),
        ({"state": "acked", "extra": 1}, "extra"),
    ],
    ids=["agent-cannot-set-pending", "negative-seq", "unknown-result", "unknown-field"],
)
async def test_bad_job_events_name_the_field(api, body, field) -> None:
    """An invalid job event gets a 422 naming the field and leaves the job as it was."""
    device, auth = await api.enroll()
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [scan_job(device)], now=api.clock())
    answer = await api.client.post(f"/api/v1/jobs/scan-{device}/events", headers=auth, json=body)
    with api.store.read() as conn:
        job = jobs.get_job(conn, f"scan-{device}")
    assert 422 == answer.status_code
    assert field == answer.json()["details"][0]["field"]
    assert job is not None
    assert "pending" == job["state"]


@pytest.mark.parametrize(
    ("kind", "patches", "field", "message"),
    [
        pytest.param(
            JobKind.INSTALL,
            [{"id": "USN-7123-1", "result": "installed"}, {"id": "USN-0-0", "result": "installed"}],
            "patches[1].id",
            "'USN-0-0' is not a patch of job 'job-1' (its patches: USN-6791-1, USN-7123-1)",
            id="install-job",
        ),
        pytest.param(
            JobKind.SCAN,
            [{"id": "KB1", "result": "installed"}],
            "patches[0].id",
            "'KB1' is not a patch of job 'job-1' (its patches: none: it installs nothing)",
            id="scan-job",
        ),
    ],
)
async def test_a_result_for_a_patch_the_job_does_not_carry_is_refused(
    api, kind: JobKind, patches: list[dict[str, str]], field: str, message: str
) -> None:
    """A patch result counts as that patch's install (status, reports): one for a patch the job
    was not issued with is a 422 naming it, and the job keeps its state and results."""
    device, auth = await api.enroll()
    carried = ("USN-7123-1", "USN-6791-1") if kind is JobKind.INSTALL else ()
    job = jobs.NewJob(
        id="job-1",
        device_id=device,
        tenant="acme/retail",
        kind=kind,
        revision="main@sha1:0123",
        patch_ids=carried,
    )
    with api.store.write() as conn:
        jobs.insert_jobs(conn, [job], now=api.clock())
    answer = await api.client.post(
        "/api/v1/jobs/job-1/events",
        headers=auth,
        json={"state": "succeeded", "patches": patches},
    )
    with api.store.read() as conn:
        stored = jobs.get_job(conn, "job-1")
    assert (422, field, message) == (
        answer.status_code,
        answer.json()["details"][0]["field"],
        answer.json()["details"][0]["message"],
    )
    assert stored is not None
    assert ("pending", {}) == (stored["state"], stored["results"] or {})


async def test_expired_enrolment_token_is_refused(api) -> None:
    """An enrolment token past its expiry cannot enrol."""
    with api.store.write() as conn:
        issued = tokens.create_token(
            conn,
            kind=tokens.TokenKind.ENROLLMENT,
            tenant="acme/retail",
            now=api.clock(),
            expires_at=api.clock() + timedelta(minutes=5),
        )
    api.clock.advance(minutes=10)
    answer = await api.client.post("/api/v1/enroll", json=api.enroll_body(issued.secret, "web-05"))
    assert 401 == answer.status_code
