"""A Debian host's inventory through the real app: source-named advisories and kernel reboots."""

from __future__ import annotations

from typing import Any

import pytest

from controller.feeds import osv
from controller.store import catalogue
from controller.store.tokens import TokenKind

pytestmark = pytest.mark.anyio


def debian_osv(record_id: str, source: str, fixed: str) -> dict[str, Any]:
    """A Debian OSV record (the debian-osv `dsa-osv` layout) naming one source package."""
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2099-04-02T00:05:19Z",
        "published": "2099-04-01T00:00:00Z",
        "summary": f"{source} - security update",
        "affected": [
            {
                "package": {
                    "ecosystem": "Debian:12",
                    "name": source,
                    "purl": f"pkg:deb/debian/{source}?arch=source",
                },
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


def package(name: str, version: str, source: str | None = None) -> dict[str, str]:
    found = {"name": name, "version": version, "arch": "amd64"}
    return found | ({"source": source} if source else {})


INVENTORY = {
    "kernel": "6.1.0-25-amd64",
    "packages": [
        package("telnet", "0.17+2.4-2+deb12u3", "inetutils (2:2.4-2+deb12u3)"),
        package("bsdutils", "1:2.38.1-5+deb12u3", "util-linux (2.38.1-5+deb12u3)"),
        package("linux-image-6.1.0-25-amd64", "6.1.106-3", "linux-signed-amd64 (6.1.106+3)"),
        package("linux-image-6.1.0-26-amd64", "6.1.112-1", "linux-signed-amd64 (6.1.112+1)"),
    ],
}


async def test_debian_inventory_judged_by_source_versions_and_kernels(api) -> None:
    """Source-named advisories compare the reported source versions; an older running kernel is a reboot finding."""
    records = [
        osv.parse_record(debian_osv("DSA-9101-1", "inetutils", "2:2.4-2+deb12u1"), source="t"),
        osv.parse_record(debian_osv("DSA-9102-1", "util-linux", "2.38.1-5+deb12u4"), source="t"),
    ]
    catalogue.upsert_records(api.store, records, now=api.clock())
    device, auth = await api.enroll(
        "realhost", os={"family": "linux", "name": "Debian GNU/Linux", "version": "12"}
    )
    report = {
        "scan": {"scannedAt": api.clock().isoformat(), "rebootRequired": False, "missing": []},
        "inventory": INVENTORY,
    }
    answer = await api.client.post(f"/api/v1/devices/{device}/report", headers=auth, json=report)
    read = {"Authorization": f"Bearer {api.token('acme', TokenKind.READ)}"}
    body = (await api.client.get(f"/api/v1/devices/{device}", headers=read)).json()
    assert 200 == answer.status_code, answer.text
    assert [("DSA-9102-1", "feed", "missing")] == [
        (p["id"], p["source"], p["state"]) for p in body["patches"]
    ]
    # the running-kernel finding is an OS reboot signal of the device (issue 13.6)
    assert (True, "linux-image-6.1.0-26-amd64", "6.1.112-1") == (
        body["rebootRequired"],
        body["inventory"]["rebootRequired"]["package"],
        body["inventory"]["rebootRequired"]["installed"],
    )
