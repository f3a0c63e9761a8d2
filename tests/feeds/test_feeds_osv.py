"""OSV advisories of Ubuntu, Debian, AlmaLinux, Rocky and Red Hat mapped to catalogue records."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds import FeedError, read_feed
from controller.feeds.osv import ecosystem_release
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
MALFORMED = FIXTURES / "malformed"


@pytest.fixture(scope="module")
def records() -> dict[str, PatchRecord]:
    result = read_feed(FIXTURES / "osv", FeedFormat.OSV)
    assert () == result.errors
    return {record.id: record for record in result.records}


def test_osv_ubuntu_notice_maps_binaries_priorities_and_pro(
    records: dict[str, PatchRecord],
) -> None:
    """A USN yields its binaries per release, the highest Ubuntu priority and the CVSS rating."""
    expected = PatchRecord(
        id="USN-9001-1",
        title="expat vulnerabilities",
        vendor="Canonical",
        product="expat",
        os=OsFamily.LINUX,
        os_versions=("ubuntu:16.04", "ubuntu:24.04"),
        classification=Classification.SECURITY,
        severity=Severity.IMPORTANT,
        released=date(2099, 3, 4),
        modified=datetime(2099, 3, 5, 8, 0, tzinfo=UTC),
        rating=9.8,
        cves=("CVE-2099-1001", "CVE-2099-1002"),
        packages=(
            FixedPackage("expat", "2.6.1-2ubuntu0.9", "ubuntu:24.04", None, "expat"),
            FixedPackage("libexpat1", "2.6.1-2ubuntu0.9", "ubuntu:24.04", None, "expat"),
            FixedPackage("libexpat1", "2.1.0-7ubuntu0.16.04.5+esm9", "ubuntu:16.04", None, "expat"),
        ),
        url="https://ubuntu.com/security/notices/USN-9001-1",
        source="osv:USN-9001-1.json",
    )
    assert expected == records["USN-9001-1"]
    expected_availability = (
        "Available with Ubuntu Pro (Infra-only): https://ubuntu.com/pro; No subscription required"
    )
    assert {"availability": expected_availability} == records["USN-9001-1"].extra


def test_osv_debian_names_the_source_package(records: dict[str, PatchRecord]) -> None:
    """Debian OSV names source packages: they get arch `source`, and only CVE ids are kept."""
    record = records["DSA-9002-1"]

    assert (
        (FixedPackage("openssh", "1:9.2p1-2+deb12u7", "debian:12", "source", "openssh"),),
        ("CVE-2099-2001",),
        Severity.UNSPECIFIED,
        "Debian",
    ) == (record.packages, record.cves, record.severity, record.vendor)


@pytest.mark.parametrize(
    ("patch_id", "severity", "classification", "rating"),
    [
        pytest.param(
            "ALSA-2099:0001",
            Severity.IMPORTANT,
            Classification.SECURITY,
            None,
            id="alma-summary-prefix",
        ),
        pytest.param(
            "ALBA-2099:0002",
            Severity.UNSPECIFIED,
            Classification.BUGFIX,
            None,
            id="alma-none-prefix-bugfix",
        ),
        pytest.param(
            "RLSA-2099:0003",
            Severity.IMPORTANT,
            Classification.SECURITY,
            8.1,
            id="rocky-cvss-band",
        ),
        pytest.param(
            "RHSA-2099:0004",
            Severity.MODERATE,
            Classification.SECURITY,
            4.4,
            id="redhat-cvss-band",
        ),
    ],
)
def test_osv_severity_and_classification(
    records: dict[str, PatchRecord],
    patch_id: str,
    severity: Severity,
    classification: Classification,
    rating: float | None,
) -> None:
    """Severity comes from the summary prefix, else the CVSS band; the id prefix classifies."""
    record = records[patch_id]

    assert (severity, classification, rating) == (
        record.severity,
        record.classification,
        record.rating,
    )


def test_osv_rpm_ecosystems_keep_epochs_and_releases(records: dict[str, PatchRecord]) -> None:
    """RPM distributions name binary packages; fixed versions keep their epoch."""
    assert (
        FixedPackage("podman", "2:4.9.4-1.el9_4", "almalinux:9"),
        FixedPackage("podman-remote", "2:4.9.4-1.el9_4", "almalinux:9"),
    ) == records["ALSA-2099:0001"].packages
    assert (
        FixedPackage("bcel", "0:6.4.1-9.el8_9", "rocky:8"),
        FixedPackage("bcel", "0:6.4.1-9.el9_1", "rocky:9"),
    ) == records["RLSA-2099:0003"].packages


def test_osv_withdrawn_advisory_is_marked(records: dict[str, PatchRecord]) -> None:
    """An advisory with `withdrawn` set imports, marked withdrawn."""
    assert (True, ("rhel:8", "rhel:9")) == (
        records["RHSA-2099:0004"].withdrawn,
        records["RHSA-2099:0004"].os_versions,
    )


@pytest.mark.parametrize(
    ("ecosystem", "release"),
    [
        pytest.param("Ubuntu:24.04:LTS", "ubuntu:24.04", id="ubuntu-lts"),
        pytest.param("Ubuntu:Pro:16.04:LTS", "ubuntu:16.04", id="ubuntu-pro"),
        pytest.param("Ubuntu:25.10", "ubuntu:25.10", id="ubuntu-interim"),
        pytest.param("Debian:12", "debian:12", id="debian"),
        pytest.param("AlmaLinux:9", "almalinux:9", id="almalinux"),
        pytest.param("Rocky Linux:8", "rocky:8", id="rocky"),
        pytest.param("Red Hat:rhel_eus:9.2::appstream", "rhel:9", id="redhat-eus"),
        pytest.param("Red Hat:enterprise_linux:8::baseos", "rhel:8", id="redhat-baseos"),
        pytest.param("Red Hat:openshift:4.16::el9", "rhel:9", id="redhat-layered"),
        pytest.param("Alpine:v3.18", "alpine:3.18", id="alpine"),
        pytest.param("PyPI", None, id="not-an-os"),
        pytest.param("Red Hat:openshift:4.16", None, id="redhat-without-release"),
    ],
)
def test_osv_ecosystem_release(ecosystem: str, release: str | None) -> None:
    """Ecosystems map to release keys; language ecosystems map to none."""
    assert release == ecosystem_release(ecosystem)


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        pytest.param(
            "osv-broken.json",
            "line 4, column 1",
            "invalid JSON: Expecting property name enclosed in double quotes",
            id="bad-json",
        ),
        pytest.param("osv-no-id.json", "/id", "required field is missing", id="missing-id"),
        pytest.param(
            "osv-bad-affected.json",
            "/affected/0/ranges",
            "expected a list, got text",
            id="wrong-type",
        ),
    ],
)
def test_osv_malformed_file_is_one_error(name: str, position: str, message: str) -> None:
    """A malformed OSV file is one error at its JSON position and yields no record."""
    result = read_feed(MALFORMED / name, FeedFormat.OSV)

    expected = ((), (FeedError(str(MALFORMED / name), position, message),))
    assert expected == (result.records, result.errors)


MODULAR = Path(__file__).parent / "fixtures" / "osv-modular"


def test_osv_modular_builds_take_the_stream_their_title_or_purl_names() -> None:
    """A modular fixed build gets the `module:stream` of the title (one stream) or purl `rpmmod`."""
    result = read_feed(MODULAR, FeedFormat.OSV)

    streams = {
        record.id: [(p.name, p.version, p.module) for p in record.packages]
        for record in result.records
    }
    assert {
        "ALSA-2099:0074": [
            ("libzip", "1.6.1-1.module_el8.6.0+2750+78feabcb", "php:7.4"),
            ("libzip", "1.6.1-1.module_el8.10.0+3935+28808425", "php:7.4"),
            ("php", "7.4.33-2.module_el8.10.0+4243+1ccf9ea1", "php:7.4"),
        ],
        # Two streams in the title: unknown, unless the purl says it; tzdata is not modular.
        "RLSA-2099:0090": [
            ("libvirt", "0:8.0.0-23.module+el8.10.0+1900+aabbccdd", None),
            ("qemu-kvm", "15:6.2.0-52.module+el8.10.0+1900+aabbccdd", "virt:rhel"),
            ("tzdata", "0:2099a-1.el8", None),
        ],
    } == streams
    assert () == result.errors
