"""Windows update channels and product names, from a real-format monthly document (13.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core import winproducts
from controller.core.applicability import ApplicabilityIndex, Inventory, detect_missing
from controller.feeds import read_feed
from controller.kinds.common import OsFamily
from controller.kinds.feeds import FeedFormat

DOCUMENT = Path(__file__).parents[1] / "feeds" / "fixtures" / "msrc-hotpatch"


@pytest.fixture(scope="module")
def index() -> ApplicabilityIndex:
    result = read_feed(DOCUMENT, FeedFormat.MSRC)
    assert () == result.errors
    return ApplicabilityIndex(result.records)


# Registry values of real machines (HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion).
SERVER_2022 = winproducts.WindowsOs(
    "Windows Server 2022 Datacenter", "Server", "ServerDatacenter", "21H2", "AMD64"
)
SERVER_2022_CORE = winproducts.WindowsOs(
    "Windows Server 2022 Standard", "Server Core", "ServerStandard", "21H2", "AMD64"
)
AZURE_HOTPATCH = winproducts.WindowsOs(
    "Windows Server 2022 Datacenter: Azure Edition",
    "Server Core",
    "ServerDatacenterAzureEdition",
    "21H2",
    "AMD64",
    hotpatch_enrolled=True,
)
SERVER_2019 = winproducts.WindowsOs(
    "Windows Server 2019 Standard", "Server", "ServerStandard", "1809", "AMD64"
)
WIN10_1809_ARM = winproducts.WindowsOs(
    "Windows 10 Enterprise LTSC 2019", "Client", "EnterpriseS", "1809", "ARM64"
)
# Windows 11 still writes `Windows 10 Pro` as its ProductName; the build says 11.
WIN11 = winproducts.WindowsOs("Windows 10 Pro", "Client", "Professional", "23H2", "AMD64")
SERVER_23H2 = winproducts.WindowsOs(
    "Windows Server Datacenter", "Server Core", "ServerDatacenter", "23H2", "AMD64"
)


def found(
    index: ApplicabilityIndex, build: str, device: winproducts.WindowsOs | None
) -> list[tuple[str, str, str]]:
    inventory = Inventory(os=OsFamily.WINDOWS, os_build=build, windows=device)
    return [(f.patch_id, f.package, f.fixed) for f in detect_missing(index, inventory)]


@pytest.mark.parametrize(
    ("build", "device", "expected"),
    [
        pytest.param(
            "10.0.20348.1906",
            SERVER_2022,
            [("KB9030216", "Windows Server 2022", "10.0.20348.1970")],
            id="normal-server-below-both-gets-the-normal-kb",
        ),
        pytest.param(
            "10.0.20348.1906",
            SERVER_2022_CORE,
            [("KB9030216", "Windows Server 2022 (Server Core installation)", "10.0.20348.1970")],
            id="server-core-names-its-own-product",
        ),
        pytest.param(
            "10.0.20348.1906",
            AZURE_HOTPATCH,
            [("KB9030325", "Windows Server 2022 (Server Core installation)", "10.0.20348.1964")],
            id="hotpatch-enrolled-gets-the-hotpatch",
        ),
        pytest.param(
            "10.0.20348.1964", AZURE_HOTPATCH, [], id="hotpatched-device-is-not-missing-the-lcu"
        ),
        pytest.param(
            "10.0.20348.1964",
            SERVER_2022,
            [("KB9030216", "Windows Server 2022", "10.0.20348.1970")],
            id="normal-server-between-the-builds",
        ),
        pytest.param(
            "10.0.20348.1906",
            None,
            [("KB9030216", "Windows Server 2022", "10.0.20348.1970")],
            id="device-that-says-nothing-takes-the-standard-channel",
        ),
    ],
)
def test_a_normal_server_gets_only_the_normal_kb(
    index: ApplicabilityIndex,
    build: str,
    device: winproducts.WindowsOs | None,
    expected: list[tuple[str, str, str]],
) -> None:
    """Of a Security Update and an AzureHotpatch for one product, a device takes its channel's."""
    assert expected == found(index, build, device)


@pytest.mark.parametrize(
    ("build", "device", "expected"),
    [
        pytest.param(
            "10.0.17763.4737",
            SERVER_2019,
            [("KB9030214", "Windows Server 2019", "10.0.17763.4851")],
            id="server-2019-not-windows-10",
        ),
        pytest.param(
            "10.0.17763.4737",
            WIN10_1809_ARM,
            [("KB9030214", "Windows 10 Version 1809 for ARM64-based Systems", "10.0.17763.4851")],
            id="windows-10-1809-arm64",
        ),
        pytest.param(
            "10.0.22631.2361",
            WIN11,
            [("KB9030310", "Windows 11 Version 23H2 for x64-based Systems", "10.0.22631.2428")],
            id="windows-11-reporting-windows-10-pro",
        ),
        pytest.param(
            "10.0.25398.1800",
            SERVER_23H2,
            [
                (
                    "KB9030209",
                    "Windows Server 2022, 23H2 Edition (Server Core installation)",
                    "10.0.25398.1850",
                )
            ],
            id="annual-channel-server",
        ),
    ],
)
def test_findings_name_the_devices_own_product(
    index: ApplicabilityIndex,
    build: str,
    device: winproducts.WindowsOs,
    expected: list[tuple[str, str, str]],
) -> None:
    """The finding names the product the device runs, as the monthly document spells it."""
    assert expected == found(index, build, device)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Windows 10 Version 1809 for x64-based Systems",
            winproducts.Product("windows 10", "1809", "x64"),
        ),
        (
            "Windows Server 2022 (Server Core installation)",
            winproducts.Product("windows server 2022", "", "", server_core=True),
        ),
        (
            "Windows 11 version 21H2 for ARM64-based Systems",
            winproducts.Product("windows 11", "21h2", "arm64"),
        ),
        (
            "Windows Server 2022, 23H2 Edition (Server Core installation)",
            winproducts.Product("windows server 2022", "23h2", "", server_core=True),
        ),
        (
            "Windows 10 Version 1809 for 32-bit Systems",
            winproducts.Product("windows 10", "1809", "32-bit"),
        ),
        ("Windows Server 2012 R2", winproducts.Product("windows server 2012 r2")),
        ("Microsoft Office 2019 for 32-bit editions", None),
    ],
)
def test_parse_product(name: str, expected: winproducts.Product | None) -> None:
    """MSRC product names split into family, version, architecture and Server Core."""
    assert expected == winproducts.parse_product(name)


@pytest.mark.parametrize(
    ("subtype", "expected"),
    [
        ("Security Update", winproducts.Channel.STANDARD),
        ("AzureHotpatch", winproducts.Channel.HOTPATCH),
        ("Security Hotpatch Update", winproducts.Channel.HOTPATCH),
        ("Monthly Rollup", winproducts.Channel.STANDARD),
        ("Security Only", winproducts.Channel.SECURITY_ONLY),
        ("", winproducts.Channel.STANDARD),
    ],
)
def test_channel_of(subtype: str, expected: winproducts.Channel) -> None:
    """The remediation's SubType names its channel."""
    assert expected == winproducts.channel_of(subtype)


def test_the_subtype_is_kept_per_product_build() -> None:
    """The importer keeps each remediation's SubType on its product builds."""
    records = {r.id: r for r in read_feed(DOCUMENT, FeedFormat.MSRC).records}
    assert [
        ("Windows Server 2022", "AzureHotpatch"),
        ("Windows Server 2022 (Server Core installation)", "AzureHotpatch"),
    ] == [(b.product, b.subtype) for b in records["KB9030325"].builds]
    assert "AzureHotpatch" == records["KB9030325"].extra["subtype"]
