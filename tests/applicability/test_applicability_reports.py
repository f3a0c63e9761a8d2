"""An inventory report through the real HTTP app yields feed-sourced patch states."""

from __future__ import annotations

from typing import Any

import pytest
from applicabilityhelpers import CATALOGUE

from controller.store import catalogue, devices

pytestmark = pytest.mark.anyio

DEBIAN = {"family": "linux", "name": "Debian GNU/Linux", "version": "12.8"}
ALMA = {"family": "linux", "name": "AlmaLinux", "version": "9.4"}
WINDOWS = {"family": "windows", "name": "Windows Server 2019", "version": "1809"}


def feed_findings(api, device_id: str) -> dict[str, tuple[str, str, str]]:
    """The stored feed findings: patch id -> (package, installed, fixed)."""
    with api.store.read() as conn:
        entries = devices.device_patches(conn, device_id)
    return {
        e["id"]: (e["package"], e["installed"], e["fixed"])
        for e in entries
        if e["source"] == "feed"
    }


def package(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "arch": "amd64", **extra}


@pytest.fixture
def imported(store) -> None:
    catalogue.upsert_records(store, CATALOGUE)


@pytest.mark.usefixtures("imported")
async def test_debian_inventory_finds_newer_package_versions(api) -> None:
    """dpkg ordering: an older openssl misses the fix; an equal openssh (epoch, +deb12u7) does not."""
    device_id, auth = await api.enroll("deb-01", DEBIAN)
    inventory = {
        "packages": [
            package("openssl", "3.0.14", release="1~deb12u2"),
            package("openssh-client", "9.2p1", epoch="1", release="2+deb12u7"),
            package("libc6", "2.36-9+deb12u9"),
        ]
    }
    await api.report(device_id, auth, {"inventory": inventory})
    expected = {
        "openssl=3.0.15-1~deb12u1": ("openssl", "3.0.14-1~deb12u2", "3.0.15-1~deb12u1"),
    }
    assert expected == feed_findings(api, device_id)


@pytest.mark.usefixtures("imported")
async def test_rpm_inventory_uses_evr_ordering(api) -> None:
    """rpm EVR: el9 below el9_4 is missing; the exact fixed EVR is not."""
    old, old_auth = await api.enroll("alma-old", ALMA)
    new, new_auth = await api.enroll("alma-new", ALMA)
    x86 = {"arch": "x86_64", "epoch": 1}
    await api.report(
        old,
        old_auth,
        {"inventory": {"packages": [package("openssl", "3.0.7", release="25.el9", **x86)]}},
    )
    await api.report(
        new,
        new_auth,
        {"inventory": {"packages": [package("openssl", "3.0.7", release="27.el9_4", **x86)]}},
    )
    expected_old = {"ALSA-2026:0001": ("openssl", "1:3.0.7-25.el9", "1:3.0.7-27.el9_4")}
    assert (expected_old, {}) == (feed_findings(api, old), feed_findings(api, new))


@pytest.mark.usefixtures("imported")
async def test_windows_build_below_the_kb_build_misses_it(api) -> None:
    """A Server 2019 build below the KB's fixed build misses the KB; the fixed build does not."""
    old, old_auth = await api.enroll("win-old", WINDOWS)
    new, new_auth = await api.enroll("win-new", WINDOWS)
    await api.report(old, old_auth, {"inventory": {"osBuild": "10.0.17763.5206"}})
    await api.report(new, new_auth, {"inventory": {"osBuild": "10.0.17763.5329"}})
    expected_old = {"KB5034127": ("Windows Server 2019", "10.0.17763.5206", "10.0.17763.5329")}
    assert (expected_old, {}) == (feed_findings(api, old), feed_findings(api, new))


@pytest.mark.usefixtures("imported")
async def test_read_api_shows_feed_findings_with_their_source(api) -> None:
    """The read API lists a feed finding next to agent findings, each with its source."""
    device_id, auth = await api.enroll("win-01", WINDOWS)
    body = {
        "scan": {
            "scannedAt": "2026-11-20T08:00:00Z",
            "rebootRequired": False,
            "missing": [{"id": "KB9999999", "severity": "low"}],
        },
        "inventory": {"osBuild": "10.0.17763.5206"},
    }
    await api.report(device_id, auth, body)
    shown = {(p["id"], p["source"], p["state"]) for p in await api.patches(device_id)}
    assert {("KB5034127", "feed", "missing"), ("KB9999999", "agent", "missing")} == shown


async def test_uncovered_release_gets_no_feed_document(api) -> None:
    """With no fix for the device's release, no feed findings are stored (not "none missing")."""
    device_id, auth = await api.enroll("deb-02", DEBIAN)
    await api.report(device_id, auth, {"inventory": {"packages": [package("openssl", "3.0.1")]}})
    with api.store.read() as conn:
        sources = {e["source"] for e in devices.device_patches(conn, device_id)}
    assert set() == sources
