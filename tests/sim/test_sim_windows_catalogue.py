"""Simulated Windows devices report real-style OS facts that match the example catalogue (13.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core import applicability
from controller.feeds import read_feed
from controller.kinds.feeds import FeedFormat
from controller.sim import fleet
from controller.store import findings

CATALOGUE = Path(__file__).parents[2] / "feeds" / "example-catalogue.json"


@pytest.fixture(scope="module")
def index() -> applicability.ApplicabilityIndex:
    result = read_feed(CATALOGUE, FeedFormat.NATIVE)
    return applicability.ApplicabilityIndex(result.records)


def profile(os_name: str, version: str, role: str, index: int) -> fleet.DeviceProfile:
    return fleet.DeviceProfile(index, "acme", f"win-{index}", "windows", os_name, version, role)


def inventory(device: fleet.DeviceProfile, build: str | None = None) -> applicability.Inventory:
    """The inventory as the store reads back what the simulated agent reports."""
    stored = findings.DeviceInventory(
        device_id="d",
        os_family="windows",
        os_name=device.os_name,
        os_version=device.os_version,
        os_build=build or device.os_build,
        kernel=None,
        packages=(),
        windows=device.windows(),
    )
    found = stored.inventory()
    assert found is not None
    return found


def one_month_behind(build: str) -> str:
    line, _, ubr = build.rpartition(".")
    return f"{line}.{int(ubr) - 1}"


DEVICES = [
    pytest.param(
        profile("Windows Server 2022 Datacenter", "10.0.20348", "server", 3),
        "Windows Server 2022 (Server Core installation)",
        id="server-2022-core",
    ),
    pytest.param(
        profile("Windows Server 2022 Datacenter", "10.0.20348", "server", 4),
        "Windows Server 2022",
        id="server-2022",
    ),
    pytest.param(
        profile("Windows Server 2019 Standard", "10.0.17763", "server", 5),
        "Windows Server 2019",
        id="server-2019",
    ),
    pytest.param(
        profile("Windows 11 Enterprise", "10.0.22631", "workstation", 6),
        "Windows 11 Version 23H2 for x64-based Systems",
        id="windows-11-writing-windows-10",
    ),
    pytest.param(
        profile("Windows 10 Enterprise", "10.0.19045", "workstation", 7),
        "Windows 10 Version 22H2 for x64-based Systems",
        id="windows-10",
    ),
]


@pytest.mark.parametrize(("device", "product"), DEVICES)
def test_simulated_windows_devices_are_patched_up_to_the_catalogue(
    index: applicability.ApplicabilityIndex, device: fleet.DeviceProfile, product: str
) -> None:
    """At its reported build a simulated device misses no cumulative update of the catalogue."""
    assert () == applicability.detect_missing(index, inventory(device))


@pytest.mark.parametrize(("device", "product"), DEVICES)
def test_one_revision_below_misses_the_newest_update_of_its_own_product(
    index: applicability.ApplicabilityIndex, device: fleet.DeviceProfile, product: str
) -> None:
    """Below its build, the device misses the catalogue's newest CU, named by its own product."""
    assert device.os_build is not None
    behind = one_month_behind(device.os_build)
    (finding,) = applicability.detect_missing(index, inventory(device, behind))
    record = index.records[finding.patch_id]
    assert (product, device.os_build, []) == (
        finding.package,
        finding.fixed,
        list(record.superseded_by),
    )


def test_every_windows_os_of_the_fleet_reports_registry_values() -> None:
    """Every Windows OS the fleet can pick has its registry values and a full build."""
    names = {name for name, _ in (*fleet.WINDOWS_SERVERS, *fleet.WINDOWS_DESKTOPS)}
    assert names == set(fleet.WINDOWS_REGISTRY)
    device = profile("Windows Server 2019 Standard", "10.0.17763", "server", 5)
    assert {
        "productName": "Windows Server 2019 Standard",
        "installationType": "Server",
        "editionId": "ServerStandard",
        "displayVersion": "1809",
        "architecture": "AMD64",
        "hotpatchEnrolled": False,
    } == device.windows()
