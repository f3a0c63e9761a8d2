"""OSV ranges with several intervals, followed from the file through the catalogue to a finding.

Each ecosystem the OSV importer reads gets the issue's example (issue 17, item 3): events
`introduced 0, fixed 2.0-1, introduced 2.1-1, fixed 2.1-3` (in the ecosystem's own syntax) make a
host at the first fix unaffected, one inside the second interval affected, and one below the first
fix affected. The documents are written in the real OSV layout of each distribution.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from controller.core.applicability import (
    ApplicabilityIndex,
    Finding,
    InstalledPackage,
    Inventory,
    PackageUpdate,
    detect_missing,
)
from controller.core.patches import EventKind, FixedPackage, RangeEvent, from_dict, to_dict
from controller.feeds import FeedError, read_feed
from controller.kinds.common import OsFamily
from controller.kinds.feeds import FeedFormat
from controller.store import catalogue

if TYPE_CHECKING:
    from pathlib import Path

    from controller.store import Store

IN, FX = EventKind.INTRODUCED, EventKind.FIXED


def osv(record_id: str, *affected: dict[str, Any]) -> dict[str, Any]:
    """An OSV document of the 1.6 schema, as the distributions publish them."""
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2099-06-02T00:00:00Z",
        "published": "2099-06-01T00:00:00Z",
        "summary": "Important: demo security update",
        "related": ["CVE-2099-7001"],
        "affected": list(affected),
    }


def entry(ecosystem: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        **extra,
    }


def two_intervals(first_fix: str, second_start: str, second_fix: str) -> list[dict[str, str]]:
    return [
        {"introduced": "0"},
        {"fixed": first_fix},
        {"introduced": second_start},
        {"fixed": second_fix},
    ]


DPKG = two_intervals("2.0-1", "2.1-1", "2.1-3")
RPM = two_intervals("0:2.0-1.el9", "0:2.1-1.el9", "0:2.1-3.el9")
UBUNTU_BINARIES = {"binaries": [{"binary_name": "libdemo1", "binary_version": "2.1-3"}]}

# (ecosystem, affected entry, release, installed package name, source name, versions: first fix,
# inside the second interval, below the first fix)
ECOSYSTEMS = [
    pytest.param(
        entry("Debian:12", "demo", DPKG),
        "debian:12",
        InstalledPackage("libdemo1", "", "amd64", source="demo"),
        ("2.0-1", "2.1-2", "1.9", "2.0-1", "2.1-3"),
        id="debian-source-package",
    ),
    pytest.param(
        entry("Ubuntu:24.04:LTS", "demo", DPKG, ecosystem_specific=UBUNTU_BINARIES),
        "ubuntu:24.04",
        InstalledPackage("libdemo1", "", "amd64", source="demo"),
        ("2.0-1", "2.1-2", "1.9", "2.0-1", "2.1-3"),
        id="ubuntu-binaries",
    ),
    pytest.param(
        entry("AlmaLinux:9", "demo", RPM),
        "almalinux:9",
        InstalledPackage("demo", "", "x86_64"),
        ("0:2.0-1.el9", "0:2.1-2.el9", "0:1.9-1.el9", "0:2.0-1.el9", "0:2.1-3.el9"),
        id="almalinux",
    ),
    pytest.param(
        entry("Rocky Linux:9", "demo", RPM),
        "rocky:9",
        InstalledPackage("demo", "", "x86_64"),
        ("0:2.0-1.el9", "0:2.1-2.el9", "0:1.9-1.el9", "0:2.0-1.el9", "0:2.1-3.el9"),
        id="rocky",
    ),
    pytest.param(
        entry("Red Hat:rhel_eus:9.2::appstream", "demo", RPM),
        "rhel:9",
        InstalledPackage("demo", "", "x86_64"),
        ("0:2.0-1.el9", "0:2.1-2.el9", "0:1.9-1.el9", "0:2.0-1.el9", "0:2.1-3.el9"),
        id="red-hat",
    ),
]


def write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / f"{document['id']}.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def host(release: str, package: InstalledPackage, version: str) -> Inventory:
    installed = InstalledPackage(package.name, version, package.arch, source=package.source)
    return Inventory(os=OsFamily.LINUX, release=release, packages=(installed,))


@pytest.mark.parametrize(("affected", "release", "package", "versions"), ECOSYSTEMS)
def test_two_intervals_through_the_catalogue(
    tmp_path: Path,
    store: Store,
    affected: dict[str, Any],
    release: str,
    package: InstalledPackage,
    versions: tuple[str, str, str, str, str],
) -> None:
    """A host at the first fix misses nothing; inside the second interval or below the first fix it misses the fix closing its interval."""
    at_first_fix, inside_second, below_first, first_fix, second_fix = versions
    result = read_feed(write(tmp_path, osv("DEMO-2099:0001", affected)), FeedFormat.OSV)
    catalogue.upsert_records(store, result.records)
    index = ApplicabilityIndex(catalogue.load_catalogue(store).values())

    found = {
        version: detect_missing(index, host(release, package, version))
        for version in (at_first_fix, inside_second, below_first)
    }

    def finding(installed: str, fixed: str) -> tuple[Finding, ...]:
        update = PackageUpdate(package.name, package.arch, installed, fixed)
        return (Finding("DEMO-2099:0001", package.name, installed, fixed, "feed", (update,)),)

    expected = {
        at_first_fix: (),
        inside_second: finding(inside_second, second_fix),
        below_first: finding(below_first, first_fix),
    }
    assert ((), expected) == (result.errors, found)


def test_ranges_are_stored_only_when_they_say_more_than_the_fix(tmp_path: Path) -> None:
    """A single `introduced 0, fixed X` stays a plain fixed version; several intervals keep their events."""
    document = osv(
        "DEMO-2099:0002",
        entry("AlmaLinux:9", "plain", [{"introduced": "0"}, {"fixed": "0:1.0-1.el9"}]),
        entry("AlmaLinux:9", "twice", RPM),
    )

    (record,) = read_feed(write(tmp_path, document), FeedFormat.OSV).records

    events = (
        RangeEvent(IN, "0"),
        RangeEvent(FX, "0:2.0-1.el9"),
        RangeEvent(IN, "0:2.1-1.el9"),
        RangeEvent(FX, "0:2.1-3.el9"),
    )
    expected = (
        FixedPackage("plain", "0:1.0-1.el9", "almalinux:9"),
        FixedPackage("twice", "0:2.1-3.el9", "almalinux:9", ranges=(events,)),
    )
    assert expected == record.packages
    assert record == from_dict(json.loads(json.dumps(to_dict(record))))


@pytest.mark.parametrize(
    ("ranges", "versions", "installed", "expected"),
    [
        pytest.param(
            [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.5-1"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0-1"}]},
            ],
            [],
            "1.5-1",
            ["2.0-1"],
            id="last-affected-fixed-by-the-other-range",
        ),
        pytest.param(
            [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "2.0-1"}, {"limit": "1.8-1"}],
                }
            ],
            [],
            "1.9-1",
            [],
            id="limit-caps-the-range",
        ),
        pytest.param(
            [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0-1"}, {"fixed": "2.0-1"}]}],
            ["0.9-1"],
            "0.9-1",
            ["2.0-1"],
            id="listed-version-below-introduced",
        ),
        pytest.param(
            [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0-1"}, {"fixed": "2.0-1"}]}],
            ["0.9-1"],
            "0.8-1",
            [],
            id="unlisted-version-below-introduced",
        ),
        pytest.param(
            [
                {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0-1"}]},
            ],
            [],
            "1.5-1",
            ["2.0-1"],
            id="semver-range-ignored-for-distribution-versions",
        ),
        pytest.param(
            [
                {
                    "type": "GIT",
                    "repo": "https://example.org/demo.git",
                    "events": [{"introduced": "0"}, {"fixed": "a1b2c3"}],
                }
            ],
            [],
            "1.5-1",
            [],
            id="git-only-entry-has-no-package-fix",
        ),
    ],
)
def test_range_kinds_on_a_debian_host(
    tmp_path: Path,
    ranges: list[dict[str, Any]],
    versions: list[str],
    installed: str,
    expected: list[str],
) -> None:
    """`last_affected`, `limit`, listed `versions` and non-ECOSYSTEM range types are evaluated as the OSV schema says."""
    affected = {"package": {"ecosystem": "Debian:12", "name": "demo"}, "ranges": ranges}
    if versions:
        affected["versions"] = versions
    result = read_feed(write(tmp_path, osv("DEMO-2099:0003", affected)), FeedFormat.OSV)
    index = ApplicabilityIndex(result.records)

    found = detect_missing(
        index, host("debian:12", InstalledPackage("demo", "", "amd64", source="demo"), installed)
    )

    assert expected == [finding.fixed for finding in found]


@pytest.mark.parametrize(
    ("event", "position", "message"),
    [
        pytest.param(
            {"fixed": 2},
            "/affected/0/ranges/0/events/1/fixed",
            "expected a version (text)",
            id="number",
        ),
        pytest.param(
            {"fixed": ""},
            "/affected/0/ranges/0/events/1/fixed",
            "expected a version (text)",
            id="empty",
        ),
        pytest.param(
            {"fixed": "2.0", "introduced": "1.0"},
            "/affected/0/ranges/0/events/1",
            "expected exactly one of introduced, fixed, last_affected, limit, got ['fixed', 'introduced']",
            id="two-kinds",
        ),
        pytest.param(
            {"patched": "2.0"},
            "/affected/0/ranges/0/events/1",
            "expected exactly one of introduced, fixed, last_affected, limit, got ['patched']",
            id="unknown-kind",
        ),
    ],
)
def test_malformed_event_is_located(
    tmp_path: Path, event: dict[str, Any], position: str, message: str
) -> None:
    """An event that is not one version of one known kind is an error at its JSON pointer."""
    affected = {
        "package": {"ecosystem": "Debian:12", "name": "demo"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, event]}],
    }
    path = write(tmp_path, osv("DEMO-2099:0004", affected))

    result = read_feed(path, FeedFormat.OSV)

    assert ((), (FeedError(str(path), position, message),)) == (result.records, result.errors)


@pytest.mark.parametrize(
    "affected",
    [
        pytest.param(
            {
                "package": {"ecosystem": "Debian:12", "name": "demo"},
                "ranges": [
                    {
                        "type": "GIT",
                        "repo": "https://example.org/demo.git",
                        "events": [{"introduced": "0"}, {"fixed": "a1b2c3"}],
                    }
                ],
            },
            id="git-range-only",
        ),
        pytest.param(
            {
                "package": {"ecosystem": "Debian:12", "name": "demo"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            },
            id="unfixed",
        ),
        pytest.param(
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}
                ],
            },
            id="not-an-os",
        ),
    ],
)
def test_record_matching_no_host_is_a_warning(tmp_path: Path, affected: dict[str, Any]) -> None:
    """An OSV record that yields no package to install imports with a warning instead of silently."""
    path = write(tmp_path, osv("DEMO-2099:0005", affected))

    result = read_feed(path, FeedFormat.OSV)

    message = "DEMO-2099:0005 can match no host: no affected entry of an operating-system ecosystem has a fixed version in an ECOSYSTEM range"
    assert ((), (), (FeedError(str(path), "/affected", message),)) == (
        result.records[0].packages,
        result.errors,
        result.warnings,
    )
