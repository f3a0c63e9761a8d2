"""Windows devices through the real HTTP app and store: their product and channel decide (13.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.feeds import read_feed
from controller.kinds.feeds import FeedFormat
from controller.store import catalogue, devices

pytestmark = pytest.mark.anyio

DOCUMENT = Path(__file__).parents[1] / "feeds" / "fixtures" / "msrc-hotpatch"
SERVER_2022 = {
    "family": "windows",
    "name": "Windows Server 2022 Datacenter",
    "version": "10.0.20348",
}


def registry(**extra: Any) -> dict[str, Any]:
    return {
        "productName": "Windows Server 2022 Datacenter",
        "installationType": "Server Core",
        "editionId": "ServerDatacenter",
        "displayVersion": "21H2",
        "architecture": "AMD64",
    } | extra


def feed_findings(api: Any, device_id: str) -> dict[str, tuple[str, str]]:
    with api.store.read() as conn:
        entries = devices.device_patches(conn, device_id)
    return {e["id"]: (e["package"], e["fixed"]) for e in entries if e["source"] == "feed"}


@pytest.fixture
def imported(store: Any) -> None:
    result = read_feed(DOCUMENT, FeedFormat.MSRC)
    catalogue.upsert_records(store, result.records)


@pytest.mark.usefixtures("imported")
async def test_normal_and_hotpatch_servers_get_their_own_kb(api: Any) -> None:
    """Below both builds, a normal Server Core gets the security update, an enrolled one the
    hotpatch, and one that says nothing the security update."""
    normal, normal_auth = await api.enroll("core-01.example.org", SERVER_2022)
    hot, hot_auth = await api.enroll("azure-01.example.org", SERVER_2022)
    silent, silent_auth = await api.enroll("old-agent", SERVER_2022)
    build = "10.0.20348.1906"
    await api.report(normal, normal_auth, {"inventory": {"osBuild": build, "windows": registry()}})
    enrolled = registry(editionId="ServerDatacenterAzureEdition", hotpatchEnrolled=True)
    await api.report(hot, hot_auth, {"inventory": {"osBuild": build, "windows": enrolled}})
    await api.report(silent, silent_auth, {"inventory": {"osBuild": build}})

    core = "Windows Server 2022 (Server Core installation)"
    assert (
        {"KB9030216": (core, "10.0.20348.1970")},
        {"KB9030325": (core, "10.0.20348.1964")},
        {"KB9030216": ("Windows Server 2022", "10.0.20348.1970")},
    ) == (feed_findings(api, normal), feed_findings(api, hot), feed_findings(api, silent))


@pytest.mark.usefixtures("imported")
async def test_enrolling_in_hotpatch_alone_reevaluates_the_device(api: Any) -> None:
    """The same build reported with `hotpatchEnrolled: true` swaps the KB."""
    device, auth = await api.enroll("azure-02.example.org", SERVER_2022)
    build = "10.0.20348.1906"
    await api.report(device, auth, {"inventory": {"osBuild": build, "windows": registry()}})
    before = sorted(feed_findings(api, device))
    enrolled = registry(hotpatchEnrolled=True)
    await api.report(device, auth, {"inventory": {"osBuild": build, "windows": enrolled}})
    assert (["KB9030216"], ["KB9030325"]) == (before, sorted(feed_findings(api, device)))


async def test_unknown_windows_fields_are_refused(api: Any) -> None:
    """An unknown key in `inventory.windows` is a 422 naming it, and stores nothing."""
    device, auth = await api.enroll("win-bad", SERVER_2022)
    answer = await api.client.post(
        f"/api/v1/devices/{device}/report",
        json={"inventory": {"osBuild": "10.0.20348.1906", "windows": registry(hotpatch=True)}},
        headers=auth,
    )
    assert 422 == answer.status_code
    assert "hotpatch" in answer.text
    with api.store.read() as conn:
        assert devices.device_inventory(conn, device) is None
