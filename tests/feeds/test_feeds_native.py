"""The native feed: YAML and JSON records validated field by field, errors naming index and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from controller.core.patches import FixedPackage, PatchRecord, ProductBuild
from controller.feeds import FeedError, read_feed
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
MALFORMED = FIXTURES / "malformed"


def test_native_directory_imports_yaml_and_json_records() -> None:
    """Every record of every YAML and JSON file is imported with all of its fields."""
    result = read_feed(FIXTURES / "native", FeedFormat.NATIVE)

    expected = (
        PatchRecord(
            id="KB9000001",
            title="2099-01 Cumulative Update for Windows Server 2019",
            vendor="Microsoft",
            product="Windows",
            os=OsFamily.WINDOWS,
            os_versions=("Windows Server 2019",),
            classification=Classification.SECURITY,
            severity=Severity.CRITICAL,
            released=date(2099, 1, 13),
            rating=8.8,
            cves=("CVE-2099-0001", "CVE-2099-0002"),
            supersedes=("KB8999991",),
            reboot_required=True,
            fixed_build="10.0.17763.9001",
            builds=(ProductBuild("Windows Server 2019", "10.0.17763.9001", "11571"),),
            url="https://support.example/KB9000001",
            source="native:catalogue.yaml",
        ),
        PatchRecord(
            id="EXA-2099:0001",
            title="Important: openssl security update",
            vendor="Example Linux",
            product="openssl",
            os=OsFamily.LINUX,
            os_versions=("debian:12",),
            classification=Classification.SECURITY,
            severity=Severity.IMPORTANT,
            released=date(2099, 1, 20),
            cves=("CVE-2099-0100",),
            superseded_by=("EXA-2099:0002",),
            reboot_required=False,
            packages=(
                FixedPackage("openssl", "3.0.15-1~deb12u1", "debian:12", "amd64", "openssl"),
                FixedPackage("libssl3", "3.0.15-1~deb12u1", "debian:12", "amd64", "openssl"),
            ),
            source="native:catalogue.yaml",
        ),
        PatchRecord(
            id="EXA-2099:0002",
            title="openssl bug fix",
            os=OsFamily.LINUX,
            classification=Classification.BUGFIX,
            severity=Severity.MODERATE,
            released=date(2099, 2, 1),
            packages=(FixedPackage("openssl", "3.0.16-1~deb12u1", "debian:12"),),
            withdrawn=True,
            source="native:wrapped.json",
        ),
    )
    assert (expected, ()) == (result.records, result.errors)


def test_native_invalid_records_name_index_field_and_line() -> None:
    """Each invalid record is one error at its pointer and YAML line; the valid one imports."""
    result = read_feed(MALFORMED / "native-invalid.yaml", FeedFormat.NATIVE)

    file = str(MALFORMED / "native-invalid.yaml")
    expected_errors = (
        FeedError(
            file,
            "/0/severity (line 2)",
            "'Severe' is not a severity (critical, important/high, moderate/medium, low)",
        ),
        FeedError(file, "/1/colour (line 4)", "unknown field"),
        FeedError(file, "/2/id (line 5)", "required field is missing"),
        FeedError(file, "/3/rating (line 7)", "Input should be less than or equal to 10 (got 11)"),
        FeedError(file, "/5 (line 10)", "duplicate id 'EXA-5', first at /4"),
    )
    assert expected_errors == result.errors
    assert ["EXA-5"] == [record.id for record in result.records]


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        pytest.param(
            "native-broken.yaml",
            "line 3, column 5",
            "invalid YAML: expected ',' or ']', but got ':'",
            id="yaml-syntax",
        ),
        pytest.param(
            "native-shape.json",
            "/",
            "expected a list of records or a mapping with only `records: [...]`",
            id="wrong-top-level-shape",
        ),
    ],
)
def test_native_unreadable_files_are_one_error(name: str, position: str, message: str) -> None:
    """A file that is not a record list is reported once, with where it went wrong."""
    result = read_feed(MALFORMED / name, FeedFormat.NATIVE)

    assert ((), (FeedError(str(MALFORMED / name), position, message),)) == (
        result.records,
        result.errors,
    )


def test_native_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    """Bad JSON is reported at the line and column of the syntax error."""
    path = tmp_path / "feed.json"
    path.write_text('[\n  {"id": "A-1",}\n]\n', encoding="utf-8")

    result = read_feed(path, FeedFormat.NATIVE)

    message = "invalid JSON: Expecting property name enclosed in double quotes"
    expected = FeedError(str(path), "line 2, column 16", message)
    assert (expected,) == result.errors


def test_native_builds_keep_their_subtype(tmp_path: Path) -> None:
    """A native record can say that a build is a hotpatch, as MSRC's `SubType` does."""
    (tmp_path / "hotpatch.json").write_text(
        '[{"id": "KB9030325", "os": "windows", "builds": [{"product": "Windows Server 2022",'
        ' "build": "10.0.20348.1964", "subtype": "AzureHotpatch"}]}]',
        encoding="utf-8",
    )
    (record,) = read_feed(tmp_path, FeedFormat.NATIVE).records
    assert (ProductBuild("Windows Server 2022", "10.0.20348.1964", "", "AzureHotpatch"),) == (
        record.builds
    )


def test_native_packages_keep_their_module_stream(tmp_path: Path) -> None:
    """A native record can name the module stream of a fixed build."""
    (tmp_path / "php.json").write_text(
        '[{"id": "ALSA-2099:0074", "os": "linux", "packages": [{"name": "php", "version":'
        ' "7.4.33-2.module_el8.10.0+4243+1ccf9ea1", "release": "almalinux:8",'
        ' "module": "php:7.4"}]}]',
        encoding="utf-8",
    )
    (record,) = read_feed(tmp_path, FeedFormat.NATIVE).records
    assert ["php:7.4"] == [p.module for p in record.packages]
