"""Machine identity through the HTTP app: a second machine with an enrolled hostname (a cloned
VM) cannot silently take the device over, at enrolment or with a copied device token; it gets
a 409 that says why, nothing changes, and an IdentityConflict alert is raised once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from controller.store import schema, tokens

pytestmark = pytest.mark.anyio

FIRST = "5f0c4bd2e6a84c0c9a1e7d2b3c4d5e6f"
CLONE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def devices_and_tokens(api) -> list[Any]:
    """What an enrolment may change: the devices and their live tokens."""
    t = schema.tokens.c
    with api.store.read() as conn:
        return [
            sorted(tuple(r) for r in conn.execute(sa.select(schema.devices))),
            sorted(
                conn.execute(
                    sa.select(t.id).where(t.kind == "device", t.revoked_at.is_(None))
                ).scalars()
            ),
        ]


async def alerts(api) -> list[dict[str, Any]]:
    answer = await api.client.get(
        "/api/v1/alerts", headers={"Authorization": f"Bearer {api.token('acme')}"}
    )
    return [a for a in answer.json()["alerts"] if a["kind"] == "IdentityConflict"]


async def enrol(api, machine_id: str | None, hostname: str = "web-01", **extra: Any):
    body = api.enroll_body(api.token("acme/retail", tokens.TokenKind.ENROLLMENT), hostname) | extra
    if machine_id is not None:
        body["machineId"] = machine_id
    return await api.client.post("/api/v1/enroll", json=body)


async def test_another_machine_cannot_enrol_an_enrolled_hostname(api) -> None:
    """A clone enrolling an enrolled hostname gets 409 naming both machines; the device, its
    tokens and its identity are unchanged, and one alert is raised however often it tries."""
    first = await enrol(api, FIRST)
    before = devices_and_tokens(api)
    refused = [await enrol(api, CLONE), await enrol(api, CLONE)]
    assert 200 == first.status_code
    assert [409, 409] == [r.status_code for r in refused]
    body = refused[0].json()
    assert "identity-conflict" == body["error"]
    assert body["message"].startswith(
        f"machineId: hostname 'web-01' is already enrolled in tenant acme/retail by another machine (machine id {FIRST}; this one is {CLONE})"
    )
    assert before == devices_and_tokens(api)
    found = await alerts(api)
    assert [(first.json()["deviceId"], "warning")] == [
        (a["deviceId"], a["severity"]) for a in found
    ]


async def test_the_same_machine_re_enrols_as_before(api) -> None:
    """The machine a device was enrolled with re-enrols to the same device, without alert, and
    the read API shows the device's machine id."""
    first = (await enrol(api, FIRST)).json()["deviceId"]
    again = await enrol(api, FIRST, hostname="WEB-01")
    listed = await api.client.get(
        "/api/v1/devices", headers={"Authorization": f"Bearer {api.token('acme')}"}
    )
    assert (200, first) == (again.status_code, again.json()["deviceId"])
    assert [] == await alerts(api)
    assert [FIRST] == [d["machineId"] for d in listed.json()["devices"]]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(None, CLONE, id="device-without-identity-adopts-one"),
        pytest.param(FIRST, None, id="agent-without-identity"),
    ],
)
async def test_an_unknown_identity_is_no_conflict(
    api, first: str | None, second: str | None
) -> None:
    """Agents that send no identity (older ones) and devices enrolled before identities
    existed re-enrol as before; the first identity reported is kept."""
    device = (await enrol(api, first)).json()["deviceId"]
    again = await enrol(api, second)
    with api.store.read() as conn:
        stored = conn.execute(sa.select(schema.devices.c.machine_id)).scalar_one()
    assert (200, device) == (again.status_code, again.json()["deviceId"])
    assert (first or second) == stored


async def test_a_replacement_machine_takes_over_when_it_says_so(api) -> None:
    """`replaceMachine` lets a new machine take the device (same id, its identity stored), and
    the take-over is still raised as an alert."""
    device = (await enrol(api, FIRST)).json()["deviceId"]
    replaced = await enrol(api, CLONE, replaceMachine=True)
    with api.store.read() as conn:
        stored = conn.execute(sa.select(schema.devices.c.machine_id)).scalar_one()
    assert (200, device, CLONE) == (replaced.status_code, replaced.json()["deviceId"], stored)
    assert 1 == len(await alerts(api))


async def test_a_copied_device_token_cannot_report_from_another_machine(api) -> None:
    """A clone that kept the original's agent state reports with its token: 409, the report
    is not stored, and an alert is raised; the original keeps reporting."""
    answer = (await enrol(api, FIRST)).json()
    device, auth = answer["deviceId"], {"Authorization": f"Bearer {answer['deviceToken']}"}
    scan = {
        "scannedAt": (api.clock() + timedelta(minutes=1)).isoformat(),
        "rebootRequired": True,
        "missing": [{"id": "USN-7123-1"}],
    }
    with api.store.read() as conn:
        before = sorted(tuple(r) for r in conn.execute(sa.select(schema.devices)))
    clone = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth,
        json={"facts": {"machineId": CLONE}, "scan": scan},
    )
    with api.store.read() as conn:
        after = sorted(tuple(r) for r in conn.execute(sa.select(schema.devices)))
        scans = conn.execute(sa.select(sa.func.count()).select_from(schema.scans)).scalar_one()
    original = await api.client.post(
        f"/api/v1/devices/{device}/report",
        headers=auth,
        json={"facts": {"machineId": FIRST}, "scan": scan},
    )
    assert (409, "identity-conflict") == (clone.status_code, clone.json()["error"])
    assert f"facts.machineId: this device is enrolled by machine {FIRST}" in clone.json()["message"]
    assert (before, 0) == (after, scans)
    assert (200, "stored") == (original.status_code, original.json()["scan"])
    assert [CLONE] == [a["details"]["machineId"] for a in await alerts(api)]


@pytest.mark.parametrize(
    "machine_id",
    ["short", "not/valid/chars/at/all", "x" * 65],
    ids=["too-short", "slashes", "too-long"],
)
async def test_a_malformed_machine_id_is_refused(api, machine_id: str) -> None:
    """A machine id that is not 8-64 letters, digits, hyphens or braces is a 422 naming it."""
    answer = await enrol(api, machine_id)
    assert 422 == answer.status_code
    assert "machineId" in answer.json()["message"]
