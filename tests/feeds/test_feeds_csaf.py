"""Red Hat CSAF 2.0 advisories: fixed packages resolved through the product tree."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds import FeedError, read_feed
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
MALFORMED = FIXTURES / "malformed"


def test_csaf_directory_maps_advisories() -> None:
    """RPM packages resolve to their platform's release; images and sources are left out."""
    result = read_feed(FIXTURES / "csaf", FeedFormat.CSAF)

    expected = (
        PatchRecord(
            id="RHBA-2099:0101",
            title="Red Hat Bug Fix Advisory: OpenShift Container Platform 4.16.1 bug fixes",
            vendor="Red Hat",
            os=OsFamily.LINUX,
            classification=Classification.BUGFIX,
            released=date(2099, 8, 3),
            modified=datetime(2099, 8, 3, tzinfo=UTC),
            source="csaf:rhba-2099_0101-no-vulnerabilities.json",
        ),
        PatchRecord(
            id="RHSA-2099:0100",
            title="Red Hat Security Advisory: c-ares security update",
            vendor="Red Hat",
            product="Red Hat Enterprise Linux BaseOS (v. 9)",
            os=OsFamily.LINUX,
            os_versions=("rhel:9",),
            classification=Classification.SECURITY,
            severity=Severity.IMPORTANT,
            released=date(2099, 8, 1),
            modified=datetime(2099, 8, 2, 6, 8, 8, tzinfo=UTC),
            rating=7.5,
            cves=("CVE-2099-6001", "CVE-2099-6002"),
            reboot_required=False,
            packages=(
                FixedPackage("c-ares", "0:1.19.1-2.el9_4", "rhel:9", "i686"),
                FixedPackage("c-ares", "0:1.19.1-2.el9_4", "rhel:9", "x86_64"),
                FixedPackage("c-ares-devel", "0:1.19.1-2.el9_4", "rhel:9", "x86_64"),
            ),
            url="https://access.redhat.com/errata/RHSA-2099:0100",
            source="csaf:rhsa-2099_0100.json",
        ),
    )
    assert (expected, ()) == (result.records, result.errors)


def test_csaf_without_tracking_id_is_an_error() -> None:
    """A document without `document.tracking.id` is reported at that pointer."""
    path = MALFORMED / "csaf-no-tracking-id.json"

    result = read_feed(path, FeedFormat.CSAF)

    expected = FeedError(str(path), "/document/tracking/id", "required field is missing")
    assert ((), (expected,)) == (result.records, result.errors)


def test_csaf_modular_packages_keep_their_module_stream() -> None:
    """Packages that are components of a module stream carry it; the streams stay apart."""
    result = read_feed(FIXTURES / "csaf-modular", FeedFormat.CSAF)

    (record,) = result.records
    assert [
        ("libzip", "0:1.6.1-1.module+el8.10.0+22000+1a2b3c4d", "rhel:8", "php:7.4"),
        ("php", "0:7.4.33-2.module+el8.10.0+22000+1a2b3c4d", "rhel:8", "php:7.4"),
        ("php", "0:8.2.25-1.module+el8.10.0+22010+5e6f7a8b", "rhel:8", "php:8.2"),
    ] == [(p.name, p.version, p.release, p.module) for p in record.packages]
