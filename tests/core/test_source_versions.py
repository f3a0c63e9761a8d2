"""Advisories that name Debian *source* packages, judged by the source version a binary was built from."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core import applicability
from controller.core.applicability import (
    ApplicabilityIndex,
    Finding,
    InstalledPackage,
    Inventory,
    PackageUpdate,
    detect_missing,
)
from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds import debpackages, osv
from controller.kinds.common import Classification, OsFamily


def debian_osv(record_id: str, source: str, fixed: str) -> dict[str, Any]:
    """A Debian OSV record (the debian-osv `dsa-osv` layout) naming one source package."""
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2099-04-02T00:05:19.431840Z",
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


def packages_stanza(text: str) -> PatchRecord:
    """The record of one stanza of a bookworm-security `Packages` index."""
    ((_, stanza),) = debpackages.stanzas(text)
    return debpackages.stanza_record(
        stanza, release="debian:12", classification=Classification.SECURITY, source="test"
    )


CATALOGUE = ApplicabilityIndex(
    (
        osv.parse_record(debian_osv("DSA-9101-1", "inetutils", "2:2.4-2+deb12u1"), source="t"),
        osv.parse_record(debian_osv("DSA-9102-1", "util-linux", "2.38.1-5+deb12u4"), source="t"),
        osv.parse_record(debian_osv("DSA-9103-1", "openssl", "3.0.16-1~deb12u1"), source="t"),
        osv.parse_record(debian_osv("DSA-9104-1", "linux", "6.1.112-1"), source="t"),
        packages_stanza(
            "Package: mount\n"
            "Source: util-linux (2.38.1-5+deb12u4)\n"
            "Version: 2.38.1-5+deb12u4\n"
            "Architecture: amd64\n"
        ),
    )
)


def deb(name: str, version: str, source: str | None = None) -> InstalledPackage:
    """A package as an agent reads it from dpkg (`${source:Package} (${source:Version})`)."""
    return InstalledPackage(name, version, "amd64", source=source)


def missing(*packages: InstalledPackage) -> list[str]:
    inventory = Inventory(os=OsFamily.LINUX, release="debian:12", packages=packages)
    return [finding.patch_id for finding in detect_missing(CATALOGUE, inventory)]


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        pytest.param(
            deb("telnet", "0.17+2.4-2+deb12u3", "inetutils (2:2.4-2+deb12u3)"),
            [],
            id="telnet-built-from-a-fixed-inetutils",
        ),
        pytest.param(
            deb("bsdutils", "1:2.38.1-5+deb12u3", "util-linux (2.38.1-5+deb12u3)"),
            ["DSA-9102-1"],
            id="bsdutils-built-from-an-unfixed-util-linux",
        ),
        pytest.param(
            deb("bsdutils", "1:2.38.1-5+deb12u4", "util-linux (2.38.1-5+deb12u4)"),
            [],
            id="bsdutils-built-from-the-fixed-util-linux",
        ),
        pytest.param(
            deb("libssl3", "3.0.15-1~deb12u1", "openssl"),
            ["DSA-9103-1"],
            id="bare-source-name-means-the-binary-version",
        ),
        pytest.param(
            deb("libssl3", "3.0.16-1~deb12u1", "openssl"),
            [],
            id="bare-source-name-at-the-fixed-version",
        ),
        pytest.param(
            deb("openssl", "3.0.15-1~deb12u1"),
            ["DSA-9103-1"],
            id="no-source-field-the-binary-is-its-source",
        ),
        pytest.param(
            deb("inetutils-telnet", "2:2.4-2+deb12u1", "inetutils"),
            [],
            id="binary-at-the-fixed-source-version",
        ),
        pytest.param(
            deb("mount", "2.38.1-5+deb12u3", "util-linux"),
            ["DSA-9102-1", "mount=2.38.1-5+deb12u4"],
            id="a-binary-named-fix-compares-the-binary-version",
        ),
        pytest.param(
            deb("linux-headers-6.1.0-26-common", "6.1.112-1", "linux"),
            [],
            id="kernel-headers-at-the-fixed-linux",
        ),
        pytest.param(
            deb("linux-image-6.1.0-25-amd64", "6.1.106-3", "linux-signed-amd64 (6.1.106+3)"),
            ["DSA-9104-1"],
            id="signed-kernel-image-of-an-unfixed-linux",
        ),
        pytest.param(
            deb("linux-image-6.1.0-26-amd64", "6.1.112-1", "linux-signed-amd64 (6.1.112+1)"),
            [],
            id="signed-kernel-image-of-the-fixed-linux",
        ),
        pytest.param(
            deb("linux-image-6.1.0-26-arm64", "6.1.112-1", "linux-signed-arm64"),
            [],
            id="signed-kernel-image-bare-source-name",
        ),
    ],
)
def test_source_named_fixes(package: InstalledPackage, expected: list[str]) -> None:
    """A fix naming a source package is judged by the source version the binary was built from."""
    assert expected == missing(package)


def test_source_finding_names_the_source_versions() -> None:
    """The finding shows the compared source versions and names the source package."""
    bsdutils = deb("bsdutils", "1:2.38.1-5+deb12u3", "util-linux (2.38.1-5+deb12u3)")
    update = PackageUpdate(
        "bsdutils", "amd64", "2.38.1-5+deb12u3", "2.38.1-5+deb12u4", source="util-linux"
    )
    expected = (
        Finding(
            "DSA-9102-1", "bsdutils", "2.38.1-5+deb12u3", "2.38.1-5+deb12u4", packages=(update,)
        ),
    )
    inventory = Inventory(os=OsFamily.LINUX, release="debian:12", packages=(bsdutils,))
    assert expected == detect_missing(CATALOGUE, inventory)


def test_every_binary_of_a_source_is_listed() -> None:
    """All binaries built from one unfixed source appear under the source's advisory."""
    packages = (
        deb("bsdutils", "1:2.38.1-5+deb12u3", "util-linux (2.38.1-5+deb12u3)"),
        deb("util-linux", "2.38.1-5+deb12u3"),
        deb("libblkid1", "2.38.1-5+deb12u3", "util-linux"),
    )
    inventory = Inventory(os=OsFamily.LINUX, release="debian:12", packages=packages)
    (finding,) = detect_missing(CATALOGUE, inventory)
    expected = [("bsdutils", "2.38.1-5+deb12u3"), ("libblkid1", "2.38.1-5+deb12u3")]
    expected.append(("util-linux", "2.38.1-5+deb12u3"))
    assert expected == [(u.name, u.installed) for u in finding.packages]


def test_ubuntu_binaries_keep_their_own_versions() -> None:
    """Ubuntu names each binary with its own fixed version: the binary's version is compared."""
    record = PatchRecord(
        id="USN-9201-1",
        os=OsFamily.LINUX,
        packages=(FixedPackage("libexpat1", "2.6.1-2ubuntu0.9", "ubuntu:24.04", None, "expat"),),
    )
    package = InstalledPackage(
        "libexpat1", "2.6.1-2ubuntu0.8", "amd64", source="expat (2.6.1-2ubuntu0.9)"
    )
    inventory = Inventory(os=OsFamily.LINUX, release="ubuntu:24.04", packages=(package,))
    assert ["USN-9201-1"] == [
        f.patch_id for f in detect_missing(ApplicabilityIndex((record,)), inventory)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, ("", ""), id="absent"),
        pytest.param("openssl", ("openssl", ""), id="bare-name"),
        pytest.param(
            "inetutils (2:2.4-2+deb12u3)", ("inetutils", "2:2.4-2+deb12u3"), id="with-version"
        ),
        pytest.param(
            "gcc-12 (12.2.0-14+deb12u1)", ("gcc-12", "12.2.0-14+deb12u1"), id="digits-and-dash"
        ),
        pytest.param("perl-Net-SSLeay", ("perl-Net-SSLeay", ""), id="rpm-source-name"),
        pytest.param(
            "libfoo-1.0~rc1^git1-1.el9.src.rpm",
            ("libfoo-1.0~rc1^git1-1.el9.src.rpm", ""),
            id="rpm-sourcerpm-file-name",
        ),
    ],
)
def test_parse_source(text: str | None, expected: tuple[str, str]) -> None:
    """The source field reads as dpkg prints it."""
    assert expected == applicability.parse_source(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("inetutils 2:2.4-2", id="version-without-parentheses"),
        pytest.param("inetutils (2:2.4-2", id="unclosed"),
        pytest.param("inetutils ()", id="empty-version"),
        pytest.param("(2:2.4-2)", id="no-name"),
        pytest.param("inetutils  (2:2.4-2)", id="two-spaces"),
    ],
)
def test_parse_source_refuses(text: str) -> None:
    """Text that is neither `name` nor `name (version)` is refused, naming what was expected."""
    with pytest.raises(ValueError, match=r"expected `name` or `name \(version\)`"):
        applicability.parse_source(text)


def test_stored_odd_source_keeps_the_first_word() -> None:
    """An inventory stored before the check keeps working: first word as name, binary version."""
    package = InstalledPackage("openssl", "3.0.15-1~deb12u1", "amd64", source="openssl junk")
    assert ["DSA-9103-1"] == missing(package)


def ubuntu_cve(source: str, fixed: str) -> dict[str, Any]:
    """An Ubuntu CVE record entry naming the source without binaries (purl `arch=src`)."""
    purl = f"pkg:deb/ubuntu/{source}?arch=src?distro=noble"
    return {
        "schema_version": "1.6.0",
        "id": "UBUNTU-CVE-2099-0001",
        "modified": "2099-04-02T00:00:00Z",
        "published": "2099-04-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Ubuntu:24.04:LTS", "name": source, "purl": purl},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        pytest.param(
            InstalledPackage("libexpat1", "2.6.1-2ubuntu0.1", "amd64", source="expat"),
            ["UBUNTU-CVE-2099-0001"],
            id="binary-of-an-unfixed-source",
        ),
        pytest.param(
            InstalledPackage("libexpat1", "2.6.1-2ubuntu0.2", "amd64", source="expat"),
            [],
            id="binary-of-the-fixed-source",
        ),
    ],
)
def test_ubuntu_cve_records_name_the_source(package: InstalledPackage, expected: list[str]) -> None:
    """Ubuntu's `arch=src` entries match binaries through their source, like Debian's."""
    index = ApplicabilityIndex(
        (osv.parse_record(ubuntu_cve("expat", "2.6.1-2ubuntu0.2"), source="t"),)
    )
    inventory = Inventory(os=OsFamily.LINUX, release="ubuntu:24.04", packages=(package,))
    assert expected == [f.patch_id for f in detect_missing(index, inventory)]
