"""The patches simulated devices can miss: from the catalogue, or a small built-in list.

Purely computational: values in, values out.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.core.patches import distro_id, release_key

if TYPE_CHECKING:
    from collections.abc import Iterable

    from controller.core.patches import PatchRecord


@dataclass(frozen=True, slots=True)
class SimPatch:
    id: str
    os_family: str  # windows | linux
    os_versions: tuple[str, ...]  # glob patterns or prefixes of "<os name> <version>"; () = any
    title: str
    classification: str
    severity: str
    size_bytes: int
    reboot_required: bool


def from_records(records: Iterable[PatchRecord]) -> list[SimPatch]:
    """Catalogue records a device could report, in id order (withdrawn ones left out)."""
    patches = []
    for record in records:
        if record.os is None or record.withdrawn:
            continue
        size = 5_000_000 + (sum(map(ord, record.id)) * 7919) % 400_000_000
        patches.append(
            SimPatch(
                id=record.id,
                os_family=record.os.value,
                os_versions=record.os_versions,
                title=record.title or record.id,
                classification=record.classification.value,
                severity=record.severity.value,
                size_bytes=size,
                reboot_required=bool(record.reboot_required),
            )
        )
    return sorted(patches, key=lambda p: p.id)


def applicable(
    patches: Iterable[SimPatch], *, os_family: str, os_name: str, os_version: str
) -> list[SimPatch]:
    """The patches for a device's OS: same family, and an OS version entry that names the
    device's product (Windows: `Windows Server 2022` for `Windows Server 2022 Datacenter`) or
    its release (Linux: `Debian 12` for `Debian GNU/Linux 12.7`, by release key)."""
    label = f"{os_name} {os_version}".lower()
    release = release_key(os_name, os_version) if os_family == "linux" else None
    found = []
    for patch in patches:
        if patch.os_family != os_family:
            continue
        if not patch.os_versions or any(
            _matches(label, release, version) for version in patch.os_versions
        ):
            found.append(patch)
    return found


def _matches(label: str, release: str | None, version: str) -> bool:
    pattern = version.lower()
    if fnmatch.fnmatchcase(label, pattern) or label.startswith(pattern):
        return True
    if release is None:
        return False
    name, _, number = version.rpartition(" ")
    if name and number[:1].isdigit():
        return release_key(name, number) == release
    return distro_id(version) == release.split(":", 1)[0]


def _win(kb: str, title: str, classification: str, severity: str, size_mb: int) -> SimPatch:
    return SimPatch(
        kb, "windows", (), title, classification, severity, size_mb << 20, reboot_required=True
    )


def _lin(advisory: str, versions: tuple[str, ...], title: str, severity: str) -> SimPatch:
    return SimPatch(
        advisory, "linux", versions, title, "security", severity, 3 << 20, reboot_required=False
    )


BUILTIN: tuple[SimPatch, ...] = (
    _win("KB5044284", "2024-10 Cumulative Update for Windows 11", "security", "critical", 900),
    _win("KB5044033", "2024-10 Cumulative Update for .NET Framework", "security", "important", 80),
    _win("KB5011048", "Microsoft .NET Framework 4.8.1 update", "update", "moderate", 60),
    _win("KB5043050", "2024-09 Servicing Stack Update", "critical", "important", 20),
    _win("KB2267602", "Microsoft Defender Antivirus definition update", "definition", "low", 150),
    _win(
        "KB5044277",
        "2024-10 Cumulative Update for Windows Server 2022",
        "security",
        "critical",
        700,
    ),
    _win("KB5044281", "2024-10 Cumulative Update for Windows 10", "security", "critical", 650),
    _win("KB5043935", "Intel - System - 10.1.19.2 driver", "driver", "unspecified", 5),
    _lin("USN-7123-1", ("Ubuntu",), "OpenSSL vulnerabilities", "important"),
    _lin("USN-7100-1", ("Ubuntu",), "Linux kernel vulnerabilities", "critical"),
    _lin("USN-7088-1", ("Ubuntu",), "curl vulnerability", "moderate"),
    _lin("DSA-5800-1", ("Debian",), "openssl security update", "important"),
    _lin("DSA-5790-1", ("Debian",), "linux security update", "critical"),
    _lin(
        "RHSA-2026:1234",
        ("Red Hat Enterprise Linux", "AlmaLinux"),
        "openssl security update",
        "important",
    ),
    _lin(
        "RHSA-2026:1180",
        ("Red Hat Enterprise Linux", "AlmaLinux"),
        "kernel security update",
        "critical",
    ),
    _lin("ALSA-2026:1234", ("AlmaLinux",), "openssl security update", "important"),
)
