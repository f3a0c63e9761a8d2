"""Windows product names and update channels: which KB of a monthly document a device takes.

Purely computational, no side effects.

Product names: Microsoft's monthly documents (CVRF, `ProductTree/FullProductName`) name products
as `Windows 10 Version 1809 for x64-based Systems`, `Windows Server 2022 (Server Core
installation)`, `Windows 11 Version 23H2 for ARM64-based Systems`, `Windows Server 2012 R2`.
A device says what it runs through the registry key `HKLM\\SOFTWARE\\Microsoft\\Windows NT\\
CurrentVersion` (`ProductName` `Windows Server 2022 Datacenter`, `InstallationType` `Server Core`,
`DisplayVersion` `21H2`, `CurrentBuild` + `UBR`) and the processor architecture (`AMD64`, `ARM64`,
`x86`). `product_matches` compares the parts both carry: the family (`Windows Server 2022`,
`Windows 10`), the version (from the build line: 17763 is 1809), the architecture and the Server
Core installation; a part the device does not report is not compared.

Update channels: for one product and month a document may list alternative remediations, told
apart by their `SubType`: `Security Update` (the cumulative update every device takes),
`AzureHotpatch` (a hotpatch for Azure Edition devices enrolled in hotpatching: no restart, a
lower fixed build), `Monthly Rollup` / `Security Only` (older systems: the rollup or the
security-only update). `channel_of` names the channel; a device takes the hotpatch channel only
when it reports that it is enrolled, and of alternatives released the same day for the same
product it takes one channel's (`preferred_channels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    """The update channel of a remediation (`SubType`), see the module docstring."""

    STANDARD = "standard"  # Security Update, Monthly Rollup, IE Cumulative, none given
    SECURITY_ONLY = "security-only"  # Security Only (an alternative to the monthly rollup)
    HOTPATCH = "hotpatch"  # AzureHotpatch, Hotpatch, Security Hotpatch Update


def channel_of(subtype: str) -> Channel:
    """`AzureHotpatch` -> hotpatch, `Security Only` -> security-only, others -> standard."""
    word = subtype.strip().lower()
    if "hotpatch" in word:
        return Channel.HOTPATCH
    if word == "security only":
        return Channel.SECURITY_ONLY
    return Channel.STANDARD


def preferred_channels(*, hotpatch_enrolled: bool) -> tuple[Channel, ...]:
    """The channels a device takes, most preferred first: of alternatives for one product and
    day, the first channel present wins. A device not enrolled never takes a hotpatch."""
    if hotpatch_enrolled:
        return (Channel.HOTPATCH, Channel.STANDARD, Channel.SECURITY_ONLY)
    return (Channel.STANDARD, Channel.SECURITY_ONLY)


@dataclass(frozen=True, slots=True)
class WindowsOs:
    """What a Windows device reports about its OS; "" where it reports nothing."""

    product_name: str = ""  # ProductName: `Windows Server 2022 Datacenter`, `Windows 11 Pro`
    installation_type: str = ""  # InstallationType: Client, Server, Server Core
    edition_id: str = ""  # EditionID: ServerDatacenter, ServerDatacenterAzureEdition, Enterprise
    display_version: str = ""  # DisplayVersion: 21H2, 23H2 (ReleaseId 1809 on older builds)
    architecture: str = ""  # AMD64, ARM64, x86
    build: str = ""  # 10.0.20348.1970
    hotpatch_enrolled: bool = False


@dataclass(frozen=True, slots=True)
class Product:
    """The parts of a product name: `Windows 10 Version 1809 for x64-based Systems` is family
    `windows 10`, version `1809`, arch `x64`, not server core."""

    family: str
    version: str = ""
    arch: str = ""
    server_core: bool = False


_FAMILY = re.compile(
    r"^(windows server(?: \d{4}(?: r2)?)?|windows (?:\d+(?:\.\d+)?|rt \d+\.\d+|vista|xp))",
    re.IGNORECASE,
)
_VERSION = re.compile(r"\bversion (\d{4}|\d{2}h\d)\b|, (\d{2}h\d) edition\b", re.IGNORECASE)
_ARCH = re.compile(r"\bfor (x64|32-bit|arm64|itanium)(?:[- ]based)? systems\b", re.IGNORECASE)
# Build line (major build) -> version name, where a family has several (Microsoft's release
# information pages: Windows 10, Windows 11, Windows Server).
_BUILD_VERSIONS = {
    10240: "",
    10586: "1511",
    14393: "1607",
    15063: "1703",
    16299: "1709",
    17134: "1803",
    17763: "1809",
    18362: "1903",
    18363: "1909",
    19041: "2004",
    19042: "20h2",
    19043: "21h1",
    19044: "21h2",
    19045: "22h2",
    22000: "21h2",
    22621: "22h2",
    22631: "23h2",
    26100: "24h2",
    20348: "",  # Windows Server 2022 (no version in its product names)
    25398: "23h2",  # Windows Server 2022, 23H2 Edition
}
_ARCHITECTURES = {"amd64": "x64", "x64": "x64", "arm64": "arm64", "x86": "32-bit"}


def parse_product(name: str) -> Product | None:
    """The parts of an MSRC product name; None when it is not a Windows OS (Office, .NET)."""
    text = " ".join(name.split())
    family = _FAMILY.match(text)
    if family is None:
        return None
    version = _VERSION.search(text)
    arch = _ARCH.search(text)
    return Product(
        family=family.group(1).lower(),
        version=(version.group(1) or version.group(2)).lower() if version else "",
        arch=arch.group(1).lower() if arch else "",
        server_core="server core" in text.lower(),
    )


def device_product(device: WindowsOs) -> Product | None:
    """The device's OS as a `Product`, from what it reports; None without a product name."""
    family = _FAMILY.match(" ".join(device.product_name.split()))
    if family is None:
        return None
    build = _major_build(device.build)
    version = _BUILD_VERSIONS.get(build, device.display_version.lower()) if build else ""
    return Product(
        family=_device_family(family.group(1).lower(), build),
        version=version or device.display_version.lower(),
        arch=_ARCHITECTURES.get(device.architecture.strip().lower(), ""),
        server_core=device.installation_type.strip().lower() == "server core",
    )


def product_matches(product_name: str, device: Product) -> bool:
    """Whether an MSRC product name is the device's product; parts the device lacks (arch,
    version) are not compared, and the family must be the same (`Windows Server 2019` is not
    `Windows 10 Version 1809`, though both are build 17763)."""
    product = parse_product(product_name)
    if product is None or product.family != device.family:
        return False
    if product.server_core != device.server_core:
        return False
    if device.version and product.version and product.version != device.version:
        return False
    return not (device.arch and product.arch and product.arch != device.arch)


def _device_family(family: str, build: int) -> str:
    # The registry's ProductName lags behind: Windows 11 still writes `Windows 10 Pro`, and the
    # annual-channel Windows Server (build 25398) writes `Windows Server Datacenter`, which the
    # documents call `Windows Server 2022, 23H2 Edition`.
    if family == "windows 10" and build >= _WINDOWS_11_FIRST_BUILD:
        return "windows 11"
    if family == "windows server" and build == _SERVER_23H2_BUILD:
        return "windows server 2022"
    return family


_WINDOWS_11_FIRST_BUILD = 22000
_SERVER_23H2_BUILD = 25398


def _major_build(build: str) -> int:
    parts = build.split(".")
    if len(parts) >= 3 and parts[2].isdigit():
        return int(parts[2])
    return 0
