"""yum/dnf updateinfo.xml: one record per <update>, plain or compressed."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds import FeedError, read_feed
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURE = Path(__file__).parent / "fixtures" / "updateinfo" / "rocky9-updateinfo.xml"
KERNEL = "0:5.14.0-427.13.1.el9_4"


def test_updateinfo_maps_every_update() -> None:
    """Type, severity, dates, CVE references, EVRs, source RPMs and reboot flags are mapped."""
    result = read_feed(FIXTURE, FeedFormat.UPDATEINFO)

    security = PatchRecord(
        id="RLSA-2099:1001",
        title="Important: kernel security update",
        vendor="Rocky Linux",
        product="kernel",
        os=OsFamily.LINUX,
        os_versions=("rocky:9",),
        classification=Classification.SECURITY,
        severity=Severity.IMPORTANT,
        released=date(2099, 9, 1),
        modified=datetime(2099, 9, 2, tzinfo=UTC),
        cves=("CVE-2099-7001",),
        reboot_required=True,
        packages=(
            FixedPackage("kernel", KERNEL, "rocky:9", "x86_64", "kernel"),
            FixedPackage("kernel-core", KERNEL, "rocky:9", "x86_64", "kernel"),
        ),
        url="https://errata.rockylinux.org/RLSA-2099:1001",
        source="updateinfo:rocky9-updateinfo.xml",
    )
    bugfix = PatchRecord(
        id="RLBA-2099:1002",
        title="tzdata bug fix and enhancement update",
        vendor="Rocky Linux",
        product="tzdata",
        os=OsFamily.LINUX,
        os_versions=("rocky:9",),
        classification=Classification.BUGFIX,
        released=date(2009, 1, 1),  # epoch seconds, as some repositories write it
        packages=(FixedPackage("tzdata", "0:2099a-1.el9", "rocky:9", "noarch", "tzdata"),),
        source="updateinfo:rocky9-updateinfo.xml",
    )
    assert (security, bugfix) == result.records[:2]
    assert (Classification.FEATURE, Severity.MODERATE, ("unknown",)) == (
        result.records[2].classification,
        result.records[2].severity,
        result.records[2].os_versions,
    )


def test_updateinfo_errors_name_the_update_and_the_missing_release() -> None:
    """An update without id is an error at its element path; unknown releases are reported."""
    result = read_feed(FIXTURE, FeedFormat.UPDATEINFO)

    expected = (
        FeedError(str(FIXTURE), "/updates/update[3]/id", "required element is missing or empty"),
        FeedError(
            str(FIXTURE),
            "",
            "1 update(s) name no release this importer knows; their packages match no device"
            " until the feed is imported with a release (e.g. rocky:9)",
        ),
    )
    assert expected == result.errors


def test_updateinfo_release_argument_wins_and_gzip_is_read(tmp_path: Path) -> None:
    """A compressed file imports like the plain one, with the release the feed declares."""
    packed = tmp_path / "repodata" / "abc-updateinfo.xml.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(FIXTURE.read_bytes()))

    result = read_feed(tmp_path, FeedFormat.UPDATEINFO, release="rocky:9")

    assert [("rocky:9",)] * 3 == [record.os_versions for record in result.records]
    assert {"rocky:9"} == {p.release for record in result.records for p in record.packages}
    assert "updateinfo:repodata/abc-updateinfo.xml.gz" == result.records[0].source


def test_updateinfo_entity_bomb_is_refused(tmp_path: Path) -> None:
    """An updateinfo.xml declaring entities is refused without expanding them."""
    path = tmp_path / "updateinfo.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE u [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>\n'
        "<updates><update><id>&b;</id></update></updates>\n",
        encoding="utf-8",
    )

    result = read_feed(path, FeedFormat.UPDATEINFO)

    message = "refused: declares the XML entity 'a' (entities are never expanded)"
    assert ((), (FeedError(str(path), "", message),)) == (result.records, result.errors)


def test_updateinfo_wrong_root_element(tmp_path: Path) -> None:
    """A well-formed XML file that is not <updates> is one error naming its root."""
    path = tmp_path / "updateinfo.xml"
    path.write_text("<repomd/>", encoding="utf-8")

    result = read_feed(path, FeedFormat.UPDATEINFO)

    assert (FeedError(str(path), "/repomd", "expected <updates>"),) == result.errors


MODULAR = Path(__file__).parent / "fixtures" / "updateinfo" / "rocky8-modular-updateinfo.xml"


def test_updateinfo_keeps_the_module_stream_of_each_collection() -> None:
    """Packages of a collection with `<module>` carry its `name:stream`; others carry none."""
    result = read_feed(MODULAR, FeedFormat.UPDATEINFO)

    streams = {
        record.id: [(p.name, p.version, p.module) for p in record.packages]
        for record in result.records
    }
    assert {
        "RLSA-2099:2074": [
            ("php", "0:7.4.33-2.module+el8.10.0+2100+1a2b3c4d", "php:7.4"),
            ("libzip", "0:1.6.1-1.module+el8.10.0+2100+1a2b3c4d", "php:7.4"),
        ],
        "RLSA-2099:2082": [("php", "0:8.2.25-1.module+el8.10.0+2110+5e6f7a8b", "php:8.2")],
        "RLBA-2099:2090": [("tzdata", "0:2099a-1.el8", None)],
    } == streams


def test_updateinfo_module_without_stream_is_an_error_at_its_update() -> None:
    """A `<module>` without a stream is refused with the update's id and path; others import."""
    result = read_feed(MODULAR, FeedFormat.UPDATEINFO)

    expected = FeedError(
        str(MODULAR),
        "/updates/update[4]/pkglist/collection/module",
        "RLSA-2099:2099: module needs a name and a stream, got 'nodejs':''",
    )
    assert (expected,) == result.errors
