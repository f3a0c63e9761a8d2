"""One bad record never sinks a whole file (issue 17, item 5), in every importer.

A record with a date in epoch milliseconds, an impossible date, garbage, a repeated field or a
value its parser cannot construct is reported at its position, and the other records of the same
file still import. Missing dates fall back to the next best one the format offers.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pytest

from controller.feeds import FeedError, read_feed
from controller.kinds.feeds import FeedFormat

if TYPE_CHECKING:
    from pathlib import Path


def update(update_id: str, dates: str) -> str:
    """One `<update>` of a Rocky Linux 9 updateinfo.xml, with the given date elements."""
    return f"""\
  <update from="releng@rockylinux.org" status="final" type="security" version="2">
    <id>{update_id}</id>
    <title>Important: demo security update</title>
    {dates}
    <release>Rocky Linux 9</release>
    <pkglist><collection short="rocky-linux-9-x86_64-baseos-rpms"><name>Rocky Linux 9 BaseOS</name>
      <package name="demo" version="1.0" release="1.el9" epoch="0" arch="x86_64"/>
    </collection></pkglist>
  </update>
"""


def test_updateinfo_package_epoch_must_be_a_number(tmp_path: Path) -> None:
    """A package whose epoch is not a number fails its update, at the package; the others land."""
    bad = update("RLSA-2099:2002", '<issued date="2099-01-01"/>').replace(
        'epoch="0"', 'epoch="one"'
    )
    path = updateinfo(tmp_path, update("RLSA-2099:2001", ""), bad)

    result = read_feed(path, FeedFormat.UPDATEINFO)

    expected = FeedError(
        str(path),
        "/updates/update[2]/pkglist//package[@name='demo']/@epoch",
        "RLSA-2099:2002: epoch 'one' is not a number",
    )
    assert (["RLSA-2099:2001"], [expected]) == ([r.id for r in result.records], list(result.errors))


def updateinfo(tmp_path: Path, *updates: str) -> Path:
    path = tmp_path / "updateinfo.xml"
    body = "".join(updates)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<updates>\n{body}</updates>\n')
    return path


@pytest.mark.parametrize(
    ("dates", "position", "message"),
    [
        pytest.param(
            '<issued date="1700000000000"/>',
            "/updates/update[2]/issued/@date",
            "RLSA-2099:2002: not a date: '1700000000000' is too large for seconds since 1970 (epoch milliseconds are not accepted; expected seconds)",
            id="epoch-milliseconds",
        ),
        pytest.param(
            '<issued date="last tuesday"/>',
            "/updates/update[2]/issued/@date",
            "RLSA-2099:2002: not a date: 'last tuesday' (expected YYYY-MM-DD, ISO 8601 or seconds since 1970)",
            id="garbage",
        ),
        pytest.param(
            '<issued date="2099-02-30 10:00:00"/>',
            "/updates/update[2]/issued/@date",
            "RLSA-2099:2002: not a date: '2099-02-30 10:00:00' (expected YYYY-MM-DD, ISO 8601 or seconds since 1970)",
            id="impossible-day",
        ),
        pytest.param(
            '<issued date="2099-01-01"/><updated date="99999999999999"/>',
            "/updates/update[2]/updated/@date",
            "RLSA-2099:2002: not a date: '99999999999999' is too large for seconds since 1970 (epoch milliseconds are not accepted; expected seconds)",
            id="updated-out-of-range",
        ),
    ],
)
def test_updateinfo_bad_date_is_reported_and_the_rest_lands(
    tmp_path: Path, dates: str, position: str, message: str
) -> None:
    """The update with the bad date is an error at its position; the updates around it import."""
    path = updateinfo(
        tmp_path,
        update("RLSA-2099:2001", '<issued date="2099-01-01 00:00:00"/>'),
        update("RLSA-2099:2002", dates),
        update("RLSA-2099:2003", '<issued date="4070908800"/>'),
    )

    result = read_feed(path, FeedFormat.UPDATEINFO)

    assert (["RLSA-2099:2001", "RLSA-2099:2003"], [FeedError(str(path), position, message)]) == (
        [record.id for record in result.records],
        list(result.errors),
    )


@pytest.mark.parametrize(
    ("dates", "released", "modified"),
    [
        pytest.param(
            '<updated date="2099-03-04 05:06:07"/>',
            date(2099, 3, 4),
            datetime(2099, 3, 4, 5, 6, 7, tzinfo=UTC),
            id="only-updated",
        ),
        pytest.param(
            '<issued date=""/><updated date="4070908800"/>',
            date(2099, 1, 1),
            datetime(2099, 1, 1, tzinfo=UTC),
            id="empty-issued-epoch-updated",
        ),
        pytest.param(
            '<issued date="2099-01-02"/><updated date="2099-03-04"/>',
            date(2099, 1, 2),
            datetime(2099, 3, 4, tzinfo=UTC),
            id="both",
        ),
        pytest.param("", None, None, id="neither"),
    ],
)
def test_updateinfo_release_date_falls_back_to_updated(
    tmp_path: Path, dates: str, released: date | None, modified: datetime | None
) -> None:
    """An update without `<issued>` is released when it was last updated."""
    result = read_feed(updateinfo(tmp_path, update("RLSA-2099:2001", dates)), FeedFormat.UPDATEINFO)

    (record,) = result.records
    assert ((), released, modified) == (result.errors, record.released, record.modified)


def osv(record_id: str, **fields: object) -> str:
    document = {
        "id": record_id,
        "modified": "2099-06-02T00:00:00Z",
        "published": "2099-06-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "AlmaLinux:9", "name": "demo"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0:1.0-1.el9"}]}
                ],
            }
        ],
    }
    return json.dumps(document | fields)


def test_osv_published_falls_back_to_modified(tmp_path: Path) -> None:
    """An OSV record without `published` (optional in the schema) is released when last modified."""
    path = tmp_path / "ALSA-2099-3001.json"
    document = json.loads(osv("ALSA-2099:3001"))
    del document["published"]
    path.write_text(json.dumps(document))

    (record,) = read_feed(path, FeedFormat.OSV).records

    assert date(2099, 6, 2) == record.released


def test_osv_zip_bad_member_is_reported_and_the_rest_lands(tmp_path: Path) -> None:
    """An osv.dev-style archive with one bad member imports the others and names the member and position."""
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ALSA-2099-3001.json", osv("ALSA-2099:3001"))
        archive.writestr("ALSA-2099-3002.json", osv("ALSA-2099:3002", published="2099-02-30"))
        archive.writestr("ALSA-2099-3003.json", osv("ALSA-2099:3003")[:-5])
        archive.writestr("ALSA-2099-3004.json", osv("ALSA-2099:3004"))
        archive.writestr("README.md", "not a record")

    result = read_feed(path, FeedFormat.OSV)

    expected_errors = [
        FeedError(
            str(path),
            "ALSA-2099-3002.json:/published",
            "not a date: '2099-02-30' (expected YYYY-MM-DD, ISO 8601 or seconds since 1970)",
        ),
        FeedError(
            str(path),
            "ALSA-2099-3003.json:line 1, column 260",
            "invalid JSON: Expecting ',' delimiter",
        ),
    ]
    assert (["ALSA-2099:3001", "ALSA-2099:3004"], expected_errors) == (
        [record.id for record in result.records],
        list(result.errors),
    )


def test_damaged_zip_is_one_error(tmp_path: Path) -> None:
    """A file named .zip that is no archive is one error for the file, not a traceback."""
    path = tmp_path / "all.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")

    result = read_feed(path, FeedFormat.OSV)

    expected = (FeedError(str(path), "", "cannot read the zip archive: File is not a zip file"),)
    assert ((), expected) == (result.records, result.errors)


@pytest.mark.parametrize(
    ("fmt", "name", "content", "position", "message"),
    [
        pytest.param(
            FeedFormat.OSV,
            "x.json",
            '{"id": "X-1", "published": NaN}',
            "",
            "invalid JSON: NaN is not a JSON value",
            id="osv-nan",
        ),
        pytest.param(
            FeedFormat.CSAF,
            "x.json",
            '{"document": {"tracking": {"id": "X-1"}}, "score": -Infinity}',
            "",
            "invalid JSON: -Infinity is not a JSON value",
            id="csaf-infinity",
        ),
        pytest.param(
            FeedFormat.CSAF,
            "x.json",
            '{"document": {"tracking": {"id": "X-1"}}, "vulnerabilities": [{"remediations": true}]}',
            "/vulnerabilities/0/remediations",
            "expected a list, got a boolean",
            id="csaf-remediations-not-a-list",
        ),
        pytest.param(
            FeedFormat.CSAF,
            "x.json",
            '{"document": {"tracking": {"id": "X-1"}, "references": 7}}',
            "/document/references",
            "expected a list, got int",
            id="csaf-references-not-a-list",
        ),
        pytest.param(
            FeedFormat.OSV,
            "x.json",
            '{"id": "X-1",\n "affected": [{"package": {"name": "a", "name": "b"}}]}',
            "line 2, column 41",
            "invalid JSON: duplicate key 'name' (written again at line 2, column 41): an "
            "object names it twice and only one value would be kept",
            id="osv-duplicate-key",
        ),
        pytest.param(
            FeedFormat.OSV,
            "x.json",
            '{"id": ' + "9" * 5000 + "}",
            "",
            "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
            id="osv-huge-integer",
        ),
        pytest.param(
            FeedFormat.OSV,
            "x.json",
            "[" * 100_000 + "]" * 100_000,
            "",
            "invalid JSON: nested too deeply",
            id="osv-deep-nesting",
        ),
        pytest.param(
            FeedFormat.UPDATEINFO,
            "updateinfo.xml",
            '<?xml version="1.0" encoding="TTF-8"?><updates/>',
            "line 1",
            "invalid XML declaration: unknown encoding: TTF-8",
            id="xml-unknown-encoding",
        ),
        pytest.param(
            FeedFormat.CSAF,
            "x.json",
            json.dumps(
                {"document": {"tracking": {"id": "X-1", "initial_release_date": "1700000000000"}}}
            ),
            "/document/tracking/initial_release_date",
            "not a date: '1700000000000' is too large for seconds since 1970 (epoch milliseconds are not accepted; expected seconds)",
            id="csaf-epoch-milliseconds",
        ),
        pytest.param(
            FeedFormat.MSRC,
            "cvrf.xml",
            '<cvrfdoc xmlns="http://www.icasi.org/CVRF/schema/cvrf/1.1"><DocumentTracking><Identification><ID>2099-Jan</ID></Identification><InitialReleaseDate>2099-01-32T08:00:00</InitialReleaseDate></DocumentTracking></cvrfdoc>',
            "/cvrfdoc/DocumentTracking/InitialReleaseDate",
            "not a date: '2099-01-32T08:00:00' (expected YYYY-MM-DD, ISO 8601 or seconds since 1970)",
            id="msrc-impossible-day",
        ),
    ],
)
def test_hostile_document_is_one_located_error(
    tmp_path: Path, fmt: FeedFormat, name: str, content: str, position: str, message: str
) -> None:
    """Non-JSON numbers, runaway integers and nesting, unknown encodings and bad document dates are located errors, not tracebacks."""
    path = tmp_path / name
    path.write_text(content)

    result = read_feed(path, fmt)

    assert ((), (FeedError(str(path), position, message),)) == (result.records, result.errors)


NATIVE = """\
- id: KB1
  releaseDate: 2099-01-13
- id: KB2
  releaseDate: 2027-02-30
- id: KB3
  title: first
  title: second
- id: KB4
  rating: 0x_
- id: KB5
  <<: {title: merged}
- id: KB6
"""


@pytest.fixture
def native_file(tmp_path: Path) -> Path:
    path = tmp_path / "feed.yaml"
    path.write_text(NATIVE)
    return path


def test_native_yaml_records(native_file: Path) -> None:
    """An impossible YAML date, a repeated key, an unconstructible number and a merge key fail their record only."""
    result = read_feed(native_file, FeedFormat.NATIVE)

    expected_errors = [
        FeedError(
            str(native_file),
            "line 4, column 16",
            "'2027-02-30' is not a date or timestamp: day is out of range for month",
        ),
        FeedError(
            str(native_file),
            "line 7, column 3",
            "duplicate key 'title': written at line 6 and again at line 7; only one of them would apply",
        ),
        FeedError(
            str(native_file),
            "line 9, column 11",
            "'0x_' is not an integer: invalid literal for int() with base 16: ''",
        ),
        FeedError(
            str(native_file),
            "line 11, column 3",
            "merge keys (`<<`) are not allowed: the key at line 11 copies fields from line 11, which a reviewer may not see; write the fields out",
        ),
    ]
    assert (["KB1", "KB6"], expected_errors) == (
        [r.id for r in result.records],
        list(result.errors),
    )


def test_native_yaml_alias_is_refused(tmp_path: Path) -> None:
    """A YAML alias (the value is written elsewhere, and aliases let a file expand without bound) fails its record."""
    path = tmp_path / "feed.yaml"
    path.write_text("- &first\n  id: KB1\n- *first\n- id: KB3\n")

    result = read_feed(path, FeedFormat.NATIVE)

    message = (
        "YAML aliases (*name) are not accepted (the value anchored at line 1); write the value out"
    )
    assert (["KB1", "KB3"], [FeedError(str(path), "/1", message)]) == (
        [r.id for r in result.records],
        list(result.errors),
    )


def test_deb_packages_repeated_field_fails_its_stanza(tmp_path: Path) -> None:
    """A stanza giving Version twice is an error at its line (dpkg refuses it too); the next stanza imports."""
    path = tmp_path / "bookworm-security-main-amd64-Packages"
    path.write_text(
        "Package: demo\nVersion: 1.0-1\nVersion: 1.0-2\nArchitecture: amd64\n\n"
        "Package: other\nVersion: 2.0-1\nArchitecture: amd64\n"
    )

    result = read_feed(path, FeedFormat.DEB_PACKAGES, release="debian:12")

    expected = FeedError(str(path), "line 1", "a field is given twice (line 3: Version)")
    assert (["other=2.0-1"], [expected]) == ([r.id for r in result.records], list(result.errors))
