"""Server-side applicability and enrichment, over catalogue values built in the tests (no I/O)."""

from __future__ import annotations

import pytest

from controller.core.applicability import (
    ApplicabilityIndex,
    EnrichedPatch,
    Finding,
    InstalledPackage,
    Inventory,
    PackageUpdate,
    ReportedPatch,
    detect_missing,
    enrich,
)
from controller.core.patches import FixedPackage, PatchRecord, ProductBuild
from controller.kinds.common import Classification, OsFamily, Severity

LINUX = OsFamily.LINUX
WINDOWS = OsFamily.WINDOWS


def advisory(patch_id: str, *packages: FixedPackage, **fields: object) -> PatchRecord:
    return PatchRecord(id=patch_id, os=LINUX, packages=packages, **fields)  # type: ignore[arg-type]


def package_version(name: str, version: str, release: str = "debian:12") -> PatchRecord:
    """A deb-packages record: id `name=version`, one package."""
    return PatchRecord(
        id=f"{name}={version}",
        os=LINUX,
        packages=(FixedPackage(name, version, release, "amd64", name),),
    )


def kb(patch_id: str, *builds: tuple[str, str], **fields: object) -> PatchRecord:
    return PatchRecord(
        id=patch_id,
        os=WINDOWS,
        builds=tuple(ProductBuild(product, build) for product, build in builds),
        **fields,  # type: ignore[arg-type]
    )


CATALOGUE = (
    advisory(
        "DSA-1",
        FixedPackage("openssl", "3.0.15-1~deb12u1", "debian:12", "amd64", "openssl"),
        FixedPackage("libssl3", "3.0.15-1~deb12u1", "debian:12", "amd64", "openssl"),
    ),
    advisory(
        "DSA-2", FixedPackage("openssh", "1:9.2p1-2+deb12u7", "debian:12", "source", "openssh")
    ),
    advisory("DSA-3", FixedPackage("libc6", "2.36-9+deb12u9", "debian:12", "i386")),
    advisory("DSA-4", FixedPackage("tzdata", "2099a-0+deb12u1", "debian:12", "all")),
    advisory("DSA-5", FixedPackage("curl", "7.88.1-10+deb12u99", "debian:12"), withdrawn=True),
    advisory("USN-1", FixedPackage("libexpat1", "2.6.1-2ubuntu0.9", "ubuntu:24.04", None, "expat")),
    advisory(
        "ALSA-1",
        FixedPackage("podman", "2:4.9.4-1.el9_4", "almalinux:9"),
        FixedPackage("glibc", "0:2.34-100.el9_4.2", "almalinux:9", "i686"),
    ),
    advisory("ALSA-2", FixedPackage("kernel", "0:5.14.0-427.18.1.el9_4", "almalinux:9", "x86_64")),
    advisory("ALPINE-1", FixedPackage("openvpn", "2.6.7-r0", "alpine:3.18")),
    package_version("base-files", "12.4+deb12u14"),
    package_version("base-files", "12.4+deb12u15"),
    kb("KB500100", ("Windows Server 2019", "10.0.17763.5329")),
    kb("KB500200", ("Windows Server 2019", "10.0.17763.5458"), supersedes=("KB500100",)),
    kb(
        "KB500300",
        ("Windows 10 Version 21H2", "10.0.19044.3930"),
        ("Windows 10 Version 22H2", "10.0.19045.3930"),
    ),
    kb("KB500400", ("Windows Server 2022", "10.0.20348.2227"), superseded_by=("KB500500",)),
    kb("KB500500", ("Windows Server 2022 ESU", "10.0.20349.1")),
    PatchRecord(
        id="KB500600", os=WINDOWS, product="Windows Server 2016", fixed_build="10.0.14393.6614"
    ),
    kb("KB500700", (".NET Framework 4.8 on Windows Server 2019", "4.8.04690.02")),
)
INDEX = ApplicabilityIndex(CATALOGUE)


def debian(*packages: InstalledPackage) -> Inventory:
    return Inventory(os=LINUX, release="debian:12", packages=packages)


def alma(*packages: InstalledPackage) -> Inventory:
    return Inventory(os=LINUX, release="almalinux:9", packages=packages)


def ids(findings: tuple[Finding, ...]) -> list[str]:
    return [finding.patch_id for finding in findings]


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        pytest.param(
            debian(InstalledPackage("openssl", "3.0.11-1~deb12u2", "amd64")),
            ["DSA-1"],
            id="dpkg-older-is-missing",
        ),
        pytest.param(
            debian(InstalledPackage("openssl", "3.0.15-1~deb12u1", "amd64")),
            [],
            id="dpkg-equal-is-installed",
        ),
        pytest.param(
            debian(InstalledPackage("openssl", "3.0.15-1", "amd64")),
            [],
            id="dpkg-tilde-backport-older-than-plain",
        ),
        pytest.param(
            debian(
                InstalledPackage("openssh-client", "9.2p1", "amd64", "1", "2+deb12u6", "openssh")
            ),
            ["DSA-2"],
            id="source-package-matches-binaries-by-source",
        ),
        pytest.param(
            debian(InstalledPackage("openssh", "1:9.2p1-2+deb12u6", "amd64")),
            ["DSA-2"],
            id="source-defaults-to-binary-name",
        ),
        pytest.param(
            debian(InstalledPackage("libc6", "2.36-9+deb12u1", "amd64")),
            [],
            id="other-arch-fix-does-not-apply",
        ),
        pytest.param(
            debian(InstalledPackage("libc6", "2.36-9+deb12u1", "i386")),
            ["DSA-3"],
            id="same-arch-fix-applies",
        ),
        pytest.param(
            debian(InstalledPackage("tzdata", "2024a-0+deb12u1", "all")),
            ["DSA-4"],
            id="arch-all",
        ),
        pytest.param(
            debian(InstalledPackage("curl", "7.88.1-10+deb12u1", "amd64")),
            [],
            id="withdrawn-is-never-missing",
        ),
        pytest.param(
            debian(InstalledPackage("libexpat1", "2.5.0-2", "amd64")),
            [],
            id="other-release-does-not-apply",
        ),
        pytest.param(
            debian(InstalledPackage("openssl", "not a version!", "amd64")),
            [],
            id="unparseable-installed-version-is-skipped",
        ),
        pytest.param(
            debian(InstalledPackage("base-files", "12.4+deb12u11", "amd64")),
            ["base-files=12.4+deb12u15"],
            id="highest-package-version-supersedes-lower",
        ),
        pytest.param(
            debian(InstalledPackage("base-files", "12.4+deb12u14", "amd64")),
            ["base-files=12.4+deb12u15"],
            id="package-version-between",
        ),
        pytest.param(
            alma(InstalledPackage("podman", "4.9.4", "x86_64", "2", "1.el9_3")),
            ["ALSA-1"],
            id="rpm-epoch-and-dist-tag",
        ),
        pytest.param(
            alma(InstalledPackage("podman", "5.0.0", "x86_64", None, "1.el9")),
            ["ALSA-1"],
            id="rpm-missing-epoch-is-zero-below-epoch-2",
        ),
        pytest.param(
            alma(InstalledPackage("glibc", "2.34", "x86_64", "0", "100.el9_4.1")),
            [],
            id="rpm-i686-fix-not-for-x86_64",
        ),
        pytest.param(
            alma(InstalledPackage("kernel", "5.14.0", "x86_64", "0", "427.13.1.el9_4")),
            ["ALSA-2"],
            id="rpm-kernel-release",
        ),
        pytest.param(
            Inventory(
                os=LINUX, release="alpine:3.18", packages=(InstalledPackage("openvpn", "2.6.6-r0"),)
            ),
            [],
            id="unsupported-ordering-is-not-guessed",
        ),
    ],
)
def test_linux_missing_patches(inventory: Inventory, expected: list[str]) -> None:
    """A patch is missing when an installed package of the release is older than its fix."""
    assert expected == ids(detect_missing(INDEX, inventory))


@pytest.mark.parametrize(
    ("os_build", "expected"),
    [
        pytest.param(
            "10.0.17763.5206", ["KB500200"], id="superseded-kb-dropped-for-missing-successor"
        ),
        pytest.param("10.0.17763.5329", ["KB500200"], id="older-kb-installed"),
        pytest.param("10.0.17763.5458", [], id="up-to-date"),
        pytest.param("10.0.19045.3803", ["KB500300"], id="22h2-build-of-shared-kb"),
        pytest.param("10.0.19045.3930", [], id="22h2-at-fixed-build"),
        pytest.param("10.0.20348.2113", ["KB500400"], id="successor-not-applicable-keeps-kb"),
        pytest.param("10.0.14393.6500", ["KB500600"], id="fixed-build-without-products"),
        pytest.param("10.0.22631.1", [], id="unknown-line"),
        pytest.param("not-a-build", [], id="unparseable-build"),
    ],
)
def test_windows_missing_kbs(os_build: str, expected: list[str]) -> None:
    """A KB is missing when the OS build is below its fixed build on the same line."""
    inventory = Inventory(os=WINDOWS, os_build=os_build)

    assert expected == ids(detect_missing(INDEX, inventory))


def test_windows_finding_names_product_and_builds() -> None:
    """The finding says which product's build the device is on, and the fixed build."""
    findings = detect_missing(INDEX, Inventory(os=WINDOWS, os_build="10.0.19044.3803"))

    assert (
        Finding("KB500300", "Windows 10 Version 21H2", "10.0.19044.3803", "10.0.19044.3930"),
    ) == findings


def test_linux_finding_lists_every_updated_package() -> None:
    """One finding per patch, with each installed package it updates, sorted by name."""
    inventory = debian(
        InstalledPackage("openssl", "3.0.11-1~deb12u2", "amd64"),
        InstalledPackage("libssl3", "3.0.11-1~deb12u2", "amd64"),
        InstalledPackage("bash", "5.2.15-2+b8", "amd64"),
    )

    findings = detect_missing(INDEX, inventory)

    expected = Finding(
        patch_id="DSA-1",
        package="libssl3",
        installed="3.0.11-1~deb12u2",
        fixed="3.0.15-1~deb12u1",
        source="feed",
        packages=(
            PackageUpdate("libssl3", "amd64", "3.0.11-1~deb12u2", "3.0.15-1~deb12u1"),
            PackageUpdate("openssl", "amd64", "3.0.11-1~deb12u2", "3.0.15-1~deb12u1"),
        ),
    )
    assert (expected,) == findings


def test_index_lookups_accept_kb_numbers_and_derive_supersedence() -> None:
    """KB numbers resolve with or without `KB`; supersedence is known from both directions."""
    assert (
        CATALOGUE[11],
        frozenset({"KB500200"}),
        frozenset({"KB500500"}),
        frozenset({"base-files=12.4+deb12u15"}),
    ) == (
        INDEX.get("500100"),
        INDEX.superseded_by("KB500100"),
        INDEX.superseded_by("KB500400"),
        INDEX.superseded_by("base-files=12.4+deb12u14"),
    )


ENRICH_CATALOGUE = ApplicabilityIndex(
    (
        PatchRecord(
            id="KB500100",
            title="2099-01 Cumulative Update",
            classification=Classification.SECURITY,
            severity=Severity.CRITICAL,
            cves=("CVE-2099-0001",),
            rating=9.8,
        ),
        PatchRecord(id="KB500200", title="2099-02 Cumulative Update", supersedes=("KB500100",)),
        PatchRecord(id="USN-1", title="expat vulnerabilities", withdrawn=True),
    )
)


def enriched(patch_id: str, **fields: object) -> EnrichedPatch:
    defaults: dict[str, object] = {
        "title": "",
        "classification": Classification.OTHER,
        "severity": Severity.UNSPECIFIED,
        "cves": (),
        "rating": None,
        "superseded_by": (),
        "kb": None,
        "size_bytes": None,
        "in_catalogue": True,
        "applicable": True,
        "reason": "",
    }
    return EnrichedPatch(id=patch_id, **(defaults | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        pytest.param(
            [ReportedPatch("KB500100")],
            [
                enriched(
                    "KB500100",
                    title="2099-01 Cumulative Update",
                    classification=Classification.SECURITY,
                    severity=Severity.CRITICAL,
                    cves=("CVE-2099-0001",),
                    rating=9.8,
                    superseded_by=("KB500200",),
                    kb="KB500100",
                )
            ],
            id="catalogue-fills-what-the-agent-omits",
        ),
        pytest.param(
            [ReportedPatch("KB500100", severity=Severity.LOW, title="agent title", size_bytes=42)],
            [
                enriched(
                    "KB500100",
                    title="2099-01 Cumulative Update",
                    classification=Classification.SECURITY,
                    severity=Severity.CRITICAL,
                    cves=("CVE-2099-0001",),
                    rating=9.8,
                    superseded_by=("KB500200",),
                    kb="KB500100",
                    size_bytes=42,
                )
            ],
            id="catalogue-wins-so-a-patch-looks-alike-everywhere",
        ),
        pytest.param(
            [
                ReportedPatch(
                    "{guid}", kb="5034200", severity=Severity.IMPORTANT, cves=("CVE-2099-9",)
                )
            ],
            [
                enriched(
                    "{guid}",
                    severity=Severity.IMPORTANT,
                    cves=("CVE-2099-9",),
                    kb="5034200",
                    in_catalogue=False,
                )
            ],
            id="unknown-patch-keeps-agent-metadata",
        ),
        pytest.param(
            [ReportedPatch("x", kb="KB500200", severity=Severity.IMPORTANT)],
            [
                enriched(
                    "KB500200",
                    title="2099-02 Cumulative Update",
                    severity=Severity.IMPORTANT,
                    kb="KB500200",
                )
            ],
            id="found-by-kb-field-agent-fills-severity",
        ),
        pytest.param(
            [ReportedPatch("KB500100"), ReportedPatch("500200")],
            [
                enriched(
                    "KB500100",
                    title="2099-01 Cumulative Update",
                    classification=Classification.SECURITY,
                    severity=Severity.CRITICAL,
                    cves=("CVE-2099-0001",),
                    rating=9.8,
                    superseded_by=("KB500200",),
                    kb="KB500100",
                    applicable=False,
                    reason="superseded by KB500200, also missing",
                ),
                enriched("KB500200", title="2099-02 Cumulative Update", kb="KB500200"),
            ],
            id="superseded-by-another-missing-patch-is-not-applicable",
        ),
        pytest.param(
            [ReportedPatch("USN-1")],
            [
                enriched(
                    "USN-1",
                    title="expat vulnerabilities",
                    applicable=False,
                    reason="withdrawn by the vendor",
                )
            ],
            id="withdrawn-is-not-applicable",
        ),
    ],
)
def test_enrich(reported: list[ReportedPatch], expected: list[EnrichedPatch]) -> None:
    """Reported patches take the catalogue's metadata; superseded or withdrawn ones don't apply."""
    assert tuple(expected) == enrich(reported, ENRICH_CATALOGUE)
