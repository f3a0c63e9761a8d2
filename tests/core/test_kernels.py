"""Install-only packages (kernels) judged by their newest installed version, and the reboot they imply."""

from __future__ import annotations

import pytest

from controller.core import kernels
from controller.core.applicability import (
    ApplicabilityIndex,
    InstalledPackage,
    Inventory,
    detect_missing,
)
from controller.core.patches import FixedPackage, PatchRecord
from controller.core.versions import Scheme
from controller.kinds.common import OsFamily

EL8 = "almalinux:8"


def rpm(name: str, version_release: str, arch: str = "x86_64") -> InstalledPackage:
    """An rpm as an agent reports it: version and release apart (`rpm -qa --qf`)."""
    version, release = version_release.split("-", 1)
    return InstalledPackage(name, version, arch, release=release)


def deb(name: str, version: str, source: str | None = None) -> InstalledPackage:
    return InstalledPackage(name, version, "amd64", source=source)


KERNEL_ADVISORY = PatchRecord(
    id="ALSA-2099:9001",
    os=OsFamily.LINUX,
    packages=tuple(
        FixedPackage(name, "4.18.0-553.155.1.el8_10", EL8, "x86_64")
        for name in ("kernel", "kernel-core", "kernel-modules", "kernel-headers")
    ),
)
DEBIAN_LINUX = PatchRecord(
    id="DSA-9301-1",
    os=OsFamily.LINUX,
    packages=(FixedPackage("linux", "6.1.112-1", "debian:12", "source", "linux"),),
)
CATALOGUE = ApplicabilityIndex((KERNEL_ADVISORY, DEBIAN_LINUX))
OLD, NEW = "4.18.0-553.100.1.el8_10", "4.18.0-553.155.1.el8_10"


@pytest.mark.parametrize(
    ("release", "packages", "expected"),
    [
        pytest.param(
            EL8,
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            [],
            id="kernel-core-old-and-fixed-installed",
        ),
        pytest.param(
            EL8,
            (rpm("kernel-core", NEW), rpm("kernel-core", OLD)),
            [],
            id="order-of-the-inventory-does-not-matter",
        ),
        pytest.param(
            EL8,
            (rpm("kernel", OLD), rpm("kernel-modules", OLD), rpm("kernel-modules", NEW)),
            ["ALSA-2099:9001"],
            id="one-family-still-old",
        ),
        pytest.param(
            EL8,
            (rpm("kernel-core", OLD), rpm("kernel-core", "4.18.0-553.120.1.el8_10")),
            ["ALSA-2099:9001"],
            id="newest-installed-still-below-the-fix",
        ),
        pytest.param(
            EL8,
            (rpm("kernel-headers", OLD), rpm("kernel-headers", NEW)),
            ["ALSA-2099:9001"],
            id="kernel-headers-is-not-install-only",
        ),
        pytest.param(
            "debian:12",
            (
                deb("linux-headers-6.1.0-25-common", "6.1.106-3", "linux"),
                deb("linux-headers-6.1.0-26-common", "6.1.112-1", "linux"),
            ),
            [],
            id="debian-old-abi-beside-the-fixed-one",
        ),
        pytest.param(
            "debian:12",
            (
                deb("linux-headers-6.1.0-25-common", "6.1.106-3", "linux"),
                deb("linux-headers-6.1.0-26-amd64", "6.1.112-1", "linux"),
            ),
            ["DSA-9301-1"],
            id="debian-other-flavour-does-not-hide-an-old-one",
        ),
    ],
)
def test_install_only_packages_by_newest(
    release: str, packages: tuple[InstalledPackage, ...], expected: list[str]
) -> None:
    """An install-only package is judged by its newest installed version (per family and arch)."""
    inventory = Inventory(os=OsFamily.LINUX, release=release, packages=packages)
    assert expected == [f.patch_id for f in detect_missing(CATALOGUE, inventory)]


@pytest.mark.parametrize(
    ("scheme", "name", "expected"),
    [
        pytest.param(Scheme.RPM, "kernel", "kernel", id="rpm-kernel"),
        pytest.param(Scheme.RPM, "kernel-core", "kernel-core", id="rpm-kernel-core"),
        pytest.param(Scheme.RPM, "kernel-modules-extra", "kernel-modules-extra", id="rpm-modules"),
        pytest.param(Scheme.RPM, "kernel-rt-core", "kernel-rt-core", id="rpm-rt"),
        pytest.param(Scheme.RPM, "kernel-uek-devel", "kernel-uek-devel", id="rpm-uek-devel"),
        pytest.param(Scheme.RPM, "kernel-headers", None, id="rpm-headers-not"),
        pytest.param(Scheme.RPM, "kernel-tools", None, id="rpm-tools-not"),
        pytest.param(Scheme.RPM, "kernelshark", None, id="rpm-kernelshark-not"),
        pytest.param(
            Scheme.DPKG, "linux-image-6.1.0-26-amd64", "linux-image-*-amd64", id="deb-image"
        ),
        pytest.param(
            Scheme.DPKG,
            "linux-image-6.1.0-26-cloud-amd64",
            "linux-image-*-cloud-amd64",
            id="deb-cloud-image",
        ),
        pytest.param(
            Scheme.DPKG,
            "linux-image-unsigned-6.8.0-45-generic",
            "linux-image-unsigned-*-generic",
            id="ubuntu-unsigned",
        ),
        pytest.param(
            Scheme.DPKG,
            "linux-modules-6.8.0-45-generic",
            "linux-modules-*-generic",
            id="ubuntu-mod",
        ),
        pytest.param(Scheme.DPKG, "linux-headers-6.8.0-45", "linux-headers-*", id="ubuntu-headers"),
        pytest.param(Scheme.DPKG, "linux-image-amd64", None, id="deb-metapackage-not"),
        pytest.param(Scheme.DPKG, "linux-libc-dev", None, id="deb-libc-dev-not"),
        pytest.param(Scheme.DPKG, "kernel-core", None, id="rpm-name-on-dpkg-not"),
    ],
)
def test_install_only_group(scheme: Scheme, name: str, expected: str | None) -> None:
    """dnf's installonlypkgs and Debian's per-ABI kernel names are install-only families."""
    assert expected == kernels.install_only_group(scheme, name)


@pytest.mark.parametrize(
    ("scheme", "kernel", "packages", "expected"),
    [
        pytest.param(
            Scheme.RPM,
            f"{OLD}.x86_64",
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            kernels.KernelReboot(f"{OLD}.x86_64", "kernel-core", f"0:{NEW}"),
            id="rpm-running-the-older",
        ),
        pytest.param(
            Scheme.RPM,
            f"{NEW}.x86_64",
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            None,
            id="rpm-running-the-newest",
        ),
        pytest.param(
            Scheme.RPM,
            f"{OLD}.x86_64",
            (rpm("kernel-core", OLD),),
            None,
            id="rpm-one-kernel",
        ),
        pytest.param(
            Scheme.RPM,
            "4.18.0-477.10.1.el8_8.x86_64",
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            None,
            id="rpm-running-kernel-not-installed-is-not-judged",
        ),
        pytest.param(
            Scheme.RPM,
            None,
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            None,
            id="rpm-no-running-kernel-reported",
        ),
        pytest.param(
            Scheme.RPM,
            f"{OLD}.x86_64",
            (rpm("kernel-headers", OLD), rpm("kernel-headers", NEW)),
            None,
            id="rpm-headers-say-nothing",
        ),
        pytest.param(
            Scheme.DPKG,
            "6.1.0-25-amd64",
            (
                deb("linux-image-6.1.0-25-amd64", "6.1.106-3"),
                deb("linux-image-6.1.0-26-amd64", "6.1.112-1"),
            ),
            kernels.KernelReboot("6.1.0-25-amd64", "linux-image-6.1.0-26-amd64", "6.1.112-1"),
            id="debian-running-the-older-abi",
        ),
        pytest.param(
            Scheme.DPKG,
            "6.1.0-26-amd64",
            (
                deb("linux-image-6.1.0-25-amd64", "6.1.106-3"),
                deb("linux-image-6.1.0-26-amd64", "6.1.112-1"),
            ),
            None,
            id="debian-running-the-newest-abi",
        ),
        pytest.param(
            Scheme.DPKG,
            "6.8.0-45-generic",
            (
                deb("linux-image-unsigned-6.8.0-45-generic", "6.8.0-45.45"),
                deb("linux-image-unsigned-6.8.0-48-generic", "6.8.0-48.48"),
            ),
            kernels.KernelReboot(
                "6.8.0-45-generic", "linux-image-unsigned-6.8.0-48-generic", "6.8.0-48.48"
            ),
            id="ubuntu-unsigned-image",
        ),
    ],
)
def test_detect_reboot(
    scheme: Scheme,
    kernel: str | None,
    packages: tuple[InstalledPackage, ...],
    expected: kernels.KernelReboot | None,
) -> None:
    """A reboot is needed when the running kernel is an installed one older than the newest."""
    assert expected == kernels.detect_reboot(scheme, kernel, packages)
