"""Debian and Ubuntu advisories over package-version patches: coverage and install ids."""

from __future__ import annotations

import pytest

from controller.core import advisories
from controller.core.patches import SOURCE_ARCH, FixedPackage, PatchRecord
from controller.kinds.common import OsFamily

DEBIAN = "debian:12"
UBUNTU = "ubuntu:24.04"


def advisory(advisory_id: str, *packages: FixedPackage) -> PatchRecord:
    return PatchRecord(id=advisory_id, os=OsFamily.LINUX, packages=packages)


def source_fix(name: str, version: str, release: str = DEBIAN) -> FixedPackage:
    return FixedPackage(name, version, release, SOURCE_ARCH, name)


def package(
    name: str,
    version: str,
    *,
    source: str | None = None,
    source_version: str | None = None,
    arch: str = "amd64",
    release: str = DEBIAN,
) -> PatchRecord:
    return PatchRecord(
        id=f"{name}={version}",
        os=OsFamily.LINUX,
        packages=(
            FixedPackage(
                name, version, release, arch, source or name, source_version=source_version
            ),
        ),
    )


INDEX = advisories.AdvisoryIndex(
    [
        advisory("DSA-6021-1", source_fix("inetutils", "2:2.4-2+deb12u4")),
        advisory("DSA-6010-1", source_fix("openssl", "3.0.15-1~deb12u1")),
        advisory("DSA-5999-1", source_fix("util-linux", "2.38.1-5+deb12u4")),
        advisory("DLA-4401-1", source_fix("openssl", "1.1.1w-0+deb11u4", "debian:11")),
        advisory(
            "USN-7123-1",
            FixedPackage("libexpat1", "2.6.1-2ubuntu0.1", UBUNTU, "amd64", "expat"),
        ),
        advisory("RHSA-2026:1", FixedPackage("openssl", "1:3.0.7-27.el9", "rhel:9", "x86_64")),
        package("openssl", "3.0.15-1~deb12u1"),  # a package version is not an advisory
    ]
)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            package(
                "telnet", "0.17+2.4-2+deb12u4", source="inetutils", source_version="2:2.4-2+deb12u4"
            ),
            {"DSA-6021-1"},
            id="binary-version-differs-from-source-at-fix",
        ),
        pytest.param(
            package(
                "telnet", "0.17+2.4-2+deb12u3", source="inetutils", source_version="2:2.4-2+deb12u3"
            ),
            set(),
            id="source-below-fix",
        ),
        pytest.param(
            package(
                "bsdutils",
                "1:2.38.1-5+deb12u4",
                source="util-linux",
                source_version="2.38.1-5+deb12u4",
            ),
            {"DSA-5999-1"},
            id="binary-epoch-ignored-source-compared",
        ),
        pytest.param(
            package("libssl3", "3.0.16-1~deb12u1", source="openssl"),
            {"DSA-6010-1"},
            id="newer-version-carries-fix",
        ),
        pytest.param(
            package("libssl3", "3.0.14-1~deb12u2", source="openssl"), set(), id="older-version"
        ),
        pytest.param(
            package("libssl1.1", "1.1.1w-0+deb11u4", source="openssl", release="debian:11"),
            {"DLA-4401-1"},
            id="other-release-its-own-advisory",
        ),
        pytest.param(
            package("libexpat1", "2.6.1-2ubuntu0.1", source="expat", release=UBUNTU),
            {"USN-7123-1"},
            id="ubuntu-binary",
        ),
        pytest.param(
            package("libexpat1", "2.6.1-2ubuntu0.1", source="expat", arch="i386", release=UBUNTU),
            set(),
            id="ubuntu-other-arch",
        ),
    ],
)
def test_covering(record: PatchRecord, expected: set[str]) -> None:
    """An advisory covers a package version built from its source at or above the fix."""
    found = advisories.candidate(record)
    assert found is not None
    assert expected == set(INDEX.covering(found))


def test_only_debian_and_ubuntu_advisories_group() -> None:
    """RPM advisories and package versions are not grouping advisories."""
    assert ("DSA-6010-1" in INDEX, "RHSA-2026:1" in INDEX, "openssl=3.0.15-1~deb12u1" in INDEX) == (
        True,
        False,
        False,
    )


CATALOGUE = {
    r.id: r
    for r in (
        advisory("DSA-6010-1", source_fix("openssl", "3.0.15-1~deb12u1")),
        package("openssl", "3.0.15-1~deb12u1"),
        package("openssl", "3.0.16-1~deb12u1"),
        package("libssl3", "3.0.15-1~deb12u1", source="openssl"),
        PatchRecord(  # read from the amd64 and the i386 index: one id, two packages
            id="libssl3=3.0.16-1~deb12u1",
            os=OsFamily.LINUX,
            packages=(
                FixedPackage("libssl3", "3.0.16-1~deb12u1", DEBIAN, "amd64", "openssl"),
                FixedPackage("libssl3", "3.0.16-1~deb12u1", DEBIAN, "i386", "openssl"),
            ),
        ),
        advisory("RHSA-2026:1", FixedPackage("openssl", "1:3.0.7-27.el9", "rhel:9", "x86_64")),
    )
}


def record(patch_id: str) -> PatchRecord:
    return CATALOGUE.get(patch_id) or PatchRecord(id=patch_id)


def test_job_patches_newest_pair_per_package_without_advisory_ids() -> None:
    """A job carries one version per package (the newest), no DSA id, other ids unchanged."""
    installable = [
        "DSA-6010-1",
        "openssl=3.0.15-1~deb12u1",
        "openssl=3.0.16-1~deb12u1",
        "libssl3=3.0.16-1~deb12u1",
        "libssl3=3.0.15-1~deb12u1",
        "RHSA-2026:1",
        "KB5034127",
        "curl=7.88.1-10+deb12u8",  # only the agent knows it: passed as it is
    ]
    expected = [
        "KB5034127",
        "RHSA-2026:1",
        "curl=7.88.1-10+deb12u8",
        "libssl3=3.0.16-1~deb12u1",
        "openssl=3.0.16-1~deb12u1",
    ]
    assert expected == advisories.job_patches(installable, record=record)
