"""`read_feed` across formats: directories, idempotence, merging, supersedence and limits."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from controller.core.patches import FixedPackage, from_dict, to_dict
from controller.feeds import FeedError, common, read_feed
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = [
    pytest.param(FIXTURES / "native", FeedFormat.NATIVE, None, id="native"),
    pytest.param(FIXTURES / "osv", FeedFormat.OSV, None, id="osv"),
    pytest.param(FIXTURES / "msrc", FeedFormat.MSRC, None, id="msrc"),
    pytest.param(FIXTURES / "csaf", FeedFormat.CSAF, None, id="csaf"),
    pytest.param(FIXTURES / "updateinfo", FeedFormat.UPDATEINFO, None, id="updateinfo"),
    pytest.param(FIXTURES / "debpackages", FeedFormat.DEB_PACKAGES, "debian:12", id="deb-packages"),
]


@pytest.mark.parametrize(("path", "fmt", "release"), FEEDS)
def test_reading_twice_gives_equal_records(
    path: Path, fmt: FeedFormat, release: str | None
) -> None:
    """Importing the same feed twice gives equal records and errors, in the same order."""
    first = read_feed(path, fmt, release=release)
    second = read_feed(path, fmt, release=release)

    assert first == second
    assert first.records


@pytest.mark.parametrize(("path", "fmt", "release"), FEEDS)
def test_records_survive_the_dict_round_trip(
    path: Path, fmt: FeedFormat, release: str | None
) -> None:
    """Every imported record comes back equal from `to_dict` through JSON and `from_dict`."""
    records = read_feed(path, fmt, release=release).records

    restored = tuple(from_dict(json.loads(json.dumps(to_dict(r)))) for r in records)

    assert records == restored


def test_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    """Files of the format are found in subdirectories and read in path order; others ignored."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    shutil.copy(FIXTURES / "osv" / "USN-9001-1.json", tmp_path / "b" / "USN-9001-1.json")
    shutil.copy(FIXTURES / "osv" / "DSA-9002-1.json", tmp_path / "a" / "DSA-9002-1.json")
    (tmp_path / "a" / "README.md").write_text("not a feed", encoding="utf-8")

    result = read_feed(tmp_path, FeedFormat.OSV)

    assert [("DSA-9002-1", "osv:a/DSA-9002-1.json"), ("USN-9001-1", "osv:b/USN-9001-1.json")] == [
        (record.id, record.source) for record in result.records
    ]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    """A feed path that does not exist is one error, not an exception."""
    missing = tmp_path / "nowhere"

    result = read_feed(missing, FeedFormat.OSV)

    assert ((), (FeedError(str(missing), "", "no such file or directory"),)) == (
        result.records,
        result.errors,
    )


def test_malformed_file_does_not_stop_the_others(tmp_path: Path) -> None:
    """One broken file is an error; the other files of the directory still import."""
    shutil.copy(FIXTURES / "osv" / "DSA-9002-1.json", tmp_path / "DSA-9002-1.json")
    shutil.copy(FIXTURES / "malformed" / "osv-broken.json", tmp_path / "USN-9999-1.json")

    result = read_feed(tmp_path, FeedFormat.OSV)

    assert (["DSA-9002-1"], [str(tmp_path / "USN-9999-1.json")]) == (
        [record.id for record in result.records],
        [error.file for error in result.errors],
    )


def test_same_id_in_two_files_is_merged(tmp_path: Path) -> None:
    """An advisory split over two files becomes one record with the packages of both."""
    base = json.loads((FIXTURES / "osv" / "ALSA-2099-0001.json").read_text(encoding="utf-8"))
    other = dict(base, modified="2099-05-08T00:00:00Z", related=["CVE-2099-3002"])
    other["affected"] = [
        {
            "package": {"ecosystem": "AlmaLinux:8", "name": "podman"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "3:4.9.4-1.el8"}]}],
        }
    ]
    (tmp_path / "almalinux9").mkdir()
    (tmp_path / "almalinux8").mkdir()
    (tmp_path / "almalinux9" / "a.json").write_text(json.dumps(base), encoding="utf-8")
    (tmp_path / "almalinux8" / "a.json").write_text(json.dumps(other), encoding="utf-8")

    (record,) = read_feed(tmp_path, FeedFormat.OSV).records

    assert (
        ("almalinux:8", "almalinux:9"),
        ("CVE-2099-3001", "CVE-2099-3002"),
        (
            FixedPackage("podman", "3:4.9.4-1.el8", "almalinux:8"),
            FixedPackage("podman", "2:4.9.4-1.el9_4", "almalinux:9"),
            FixedPackage("podman-remote", "2:4.9.4-1.el9_4", "almalinux:9"),
        ),
    ) == (record.os_versions, record.cves, record.packages)


def test_supersedence_is_linked_across_documents() -> None:
    """A KB named in a later KB's Supercedence gets that KB in `superseded_by`."""
    records = {r.id: r for r in read_feed(FIXTURES / "msrc", FeedFormat.MSRC).records}

    assert (("KB9000011",), ()) == (
        records["KB9000001"].superseded_by,
        records["KB9000011"].superseded_by,
    )


def test_files_above_the_size_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file (or decompressed stream) larger than the limit is refused, not read into memory."""
    monkeypatch.setattr(common, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"id": "X", "details": "x" * 200}), encoding="utf-8")

    result = read_feed(path, FeedFormat.OSV)

    assert (
        FeedError(str(path), "", "larger than 100 bytes (decompressed); refused"),
    ) == result.errors


MALFORMED = FIXTURES / "malformed"


@pytest.mark.parametrize(
    ("path", "fmt", "release", "errors", "failed"),
    [
        pytest.param(MALFORMED / "native-invalid.yaml", FeedFormat.NATIVE, None, 5, 5, id="native"),
        pytest.param(MALFORMED / "osv-broken.json", FeedFormat.OSV, None, 1, 1, id="osv-document"),
        pytest.param(
            MALFORMED / "msrc-broken.xml", FeedFormat.MSRC, None, 1, 1, id="msrc-document"
        ),
        pytest.param(
            MALFORMED / "broken-Packages",
            FeedFormat.DEB_PACKAGES,
            "debian:12",
            2,
            2,
            id="deb-packages-stanzas",
        ),
        pytest.param(
            FIXTURES / "updateinfo" / "rocky9-updateinfo.xml",
            FeedFormat.UPDATEINFO,
            None,
            2,
            1,
            id="updateinfo-release-note-fails-no-record",
        ),
    ],
)
def test_failed_counts_records_and_documents_not_errors(
    path: Path, fmt: FeedFormat, release: str | None, errors: int, failed: int
) -> None:
    """`failed` is the number of records or documents that did not import, whatever the errors."""
    result = read_feed(path, fmt, release=release)

    assert (errors, failed) == (len(result.errors), result.failed)


def test_a_native_record_with_several_errors_fails_once(tmp_path: Path) -> None:
    """Three errors in one record are three errors, each at its field, and one failed record."""
    path = tmp_path / "n.json"
    path.write_text(
        '[{"id":"X-1","severity":"nuclear","rating":11,"bogus":1},{"id":"X-2"}]', encoding="utf-8"
    )

    result = read_feed(path, FeedFormat.NATIVE)

    assert (["X-2"], 1, ["/0/severity", "/0/rating", "/0/bogus"]) == (
        [record.id for record in result.records],
        result.failed,
        [error.position for error in result.errors],
    )


def test_osv_archive_members_fail_one_by_one(tmp_path: Path) -> None:
    """A zip with one good and two bad members: two failed, the good one imports."""
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("DSA-9002-1.json", (FIXTURES / "osv" / "DSA-9002-1.json").read_bytes())
        out.writestr("bad-1.json", "[1]")
        out.writestr("bad-2.json", "{")

    result = read_feed(archive, FeedFormat.OSV)

    assert (1, 2, 2) == (len(result.records), len(result.errors), result.failed)


@pytest.mark.parametrize("content", [None, "README.md"], ids=["empty", "no-document-of-the-format"])
def test_a_directory_without_documents_is_an_error(tmp_path: Path, content: str | None) -> None:
    """A directory holding no file of the format imports nothing and says so at its path."""
    if content is not None:
        (tmp_path / content).write_text("not a feed", encoding="utf-8")

    result = read_feed(tmp_path, FeedFormat.UPDATEINFO)

    message = (
        "no updateinfo document in this directory (docs/feeds.md lists the file names each"
        " format reads); nothing imported"
    )
    assert ((), (FeedError(str(tmp_path), "", message),), 0) == (
        result.records,
        result.errors,
        result.documents,
    )
