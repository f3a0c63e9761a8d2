"""Devices enrolled under real host names: named in any case by read API filters (13.10)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.store import jobs, operations
from controller.store.job_states import JobKind

pytestmark = pytest.mark.anyio


def scan_job(device: str, tenant: str) -> jobs.NewJob:
    return jobs.NewJob(
        id=f"scan-{device}", device_id=device, tenant=tenant, kind=JobKind.SCAN, revision="r"
    )


async def test_a_fqdn_enrols_lowercased_and_filters_find_it_in_any_case(api) -> None:
    """`RealHost.Example.ORG` is device `realhost.example.org`; `?device=` takes the id or the
    name in any case, and a name outside the token's scope finds nothing."""
    device, _ = await api.enroll("RealHost.Example.ORG")
    other, _ = await api.enroll("realhost.example.org", tenant="acme/logistics")
    with api.store.write() as conn:
        jobs.insert_jobs(
            conn,
            [scan_job(device, "acme/retail"), scan_job(other, "acme/logistics")],
            now=api.clock(),
        )
    retail = {"Authorization": f"Bearer {api.token('acme/retail')}"}

    listed = (await api.client.get(f"/api/v1/devices/{device}", headers=retail)).json()
    found = {}
    for needle in (device, "realhost.example.org", "REALHOST.example.org", "realhost"):
        answer = await api.client.get("/api/v1/jobs", params={"device": needle}, headers=retail)
        assert 200 == answer.status_code, answer.text
        found[needle] = [job["deviceId"] for job in answer.json()["jobs"]]

    assert "realhost.example.org" == listed["name"]
    assert {
        device: [device],
        "realhost.example.org": [device],
        "REALHOST.example.org": [device],
        "realhost": [],
    } == found


async def test_a_long_host_name_filter_is_accepted_and_a_longer_one_refused(api) -> None:
    """Host names reach 253 characters: the filter takes them; beyond, a 422 names `device`."""
    retail = {"Authorization": f"Bearer {api.token('acme/retail')}"}
    long_name = ".".join(["a" * 63] * 3) + ".example"  # 200 characters
    ok = await api.client.get("/api/v1/compliance", params={"device": long_name}, headers=retail)
    refused = await api.client.get("/api/v1/jobs", params={"device": "a" * 254}, headers=retail)
    assert (200, []) == (ok.status_code, ok.json()["compliance"])
    assert 422 == refused.status_code
    assert "device" in refused.text


async def test_explain_finds_a_device_by_its_host_name_in_any_case(api) -> None:
    """`patchctl explain DEVICE` looks the device up by id or host name, case-insensitively
    (`store.operations.find_device`, as the admin API and the device read call do)."""
    device, _ = await api.enroll("RealHost.Example.ORG")
    with api.store.read() as conn:
        found = [
            operations.find_device(conn, needle, scope="acme")["id"]
            for needle in ("REALHOST.EXAMPLE.ORG", "realhost.example.org", device)
        ]
        with pytest.raises(operations.NotFound):
            operations.find_device(conn, "realhost", scope="acme")
    assert [device, device, device] == found


async def test_one_device_by_its_name_as_by_its_id(api) -> None:
    """`GET /api/v1/devices/{device}` takes the id or the name in any case; a name that two
    tenants of the scope share answers 409 naming them, one outside the scope 404."""
    device, _ = await api.enroll("web-01")
    await api.enroll("web-01", tenant="acme/logistics")
    await api.enroll("db-01", tenant="other")
    client = {"Authorization": f"Bearer {api.token('acme/retail')}"}
    partner = {"Authorization": f"Bearer {api.token('acme')}"}

    async def get(needle: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        answer = await api.client.get(f"/api/v1/devices/{needle}", headers=headers)
        return answer.status_code, answer.json()

    by_id = await get(device, client)
    by_names = [await get(name, client) for name in ("web-01", "WEB-01")]
    shared, outside, unknown = [await get(name, partner) for name in ("web-01", "db-01", "nothing")]
    assert (200, device) == (by_id[0], by_id[1]["id"])
    assert [by_id, by_id] == by_names
    assert (409, 404, 404) == (shared[0], outside[0], unknown[0])
    assert "enrolled in tenants acme/logistics, acme/retail: give the device id" in str(shared[1])
    assert "no device 'db-01' (id or name) in tenant scope 'acme'" == outside[1]["message"]
