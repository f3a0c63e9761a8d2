"""Patch records: their JSON form, OS release keys, KB numbers and supersedence links."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from controller.core import patches
from controller.core.patches import (
    EventKind,
    FixedPackage,
    PatchRecord,
    ProductBuild,
    RangeEvent,
)
from controller.kinds.common import Classification, OsFamily, Severity

FULL = PatchRecord(
    id="DSA-5800-1",
    title="openssl security update",
    vendor="debian",
    product="openssl",
    os=OsFamily.LINUX,
    os_versions=("12",),
    classification=Classification.SECURITY,
    severity=Severity.IMPORTANT,
    released=date(2026, 11, 1),
    modified=datetime(2026, 11, 2, 8, 30, tzinfo=UTC),
    rating=7.5,
    cves=("CVE-2026-0001", "CVE-2026-0002"),
    superseded_by=("DSA-5900-1",),
    supersedes=("DSA-5700-1",),
    reboot_required=False,
    packages=(
        FixedPackage(
            name="openssl",
            version="3.0.15-1~deb12u1",
            release="debian:12",
            arch="amd64",
            source_name="openssl",
            ranges=(
                (RangeEvent(EventKind.INTRODUCED, "0"), RangeEvent(EventKind.FIXED, "3.0.15")),
            ),
            affected_versions=("3.0.11-1",),
            source_version="3.0.15-1",
            module="openssl:3",
        ),
    ),
    fixed_build=None,
    url="https://security-tracker.debian.org/tracker/DSA-5800-1",
    withdrawn=True,
    source="osv:debian",
    builds=(ProductBuild("Windows Server 2022", "10.0.20348.2849", "12345", "Security Update"),),
)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(PatchRecord(id="KB5034127"), id="bare"),
        pytest.param(FULL, id="every-field"),
    ],
)
def test_records_survive_their_json_form(record: PatchRecord) -> None:
    """`from_dict(to_dict(r))` gives the record back, field by field."""
    assert record == patches.from_dict(patches.to_dict(record))


@pytest.mark.parametrize(
    ("distro", "version", "expected"),
    [
        ("debian", "12.11", "debian:12"),
        ("Ubuntu", "24.04.1 LTS", "ubuntu:24.04"),
        ("Red Hat Enterprise Linux", "9.4", "rhel:9"),
        ("Rocky Linux", "8.10", "rocky:8"),
        ("alpine", "v3.18", "alpine:3.18"),
        ("amzn", "2023", "amzn:2023"),
        ("Gentoo Base System", "rolling", "gentoo-base-system:rolling"),
        ("arch", "", "arch"),
    ],
)
def test_release_keys_name_the_release_a_package_belongs_to(
    distro: str, version: str, expected: str
) -> None:
    """Major.minor for Ubuntu and Alpine, major for the others; unknown names are slugged."""
    assert (expected, expected.split(":", maxsplit=1)[0]) == (
        patches.release_key(distro, version),
        patches.release_family(expected),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5034127", "KB5034127"),
        ("kb5034127", "KB5034127"),
        (" KB5034127 ", "KB5034127"),
        ("KB12345", None),
        ("MS17-010", None),
    ],
)
def test_kb_numbers_are_normalised(text: str, expected: str | None) -> None:
    """Six to eight digits, with or without the KB prefix, in any case."""
    assert expected == patches.normalize_kb(text)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            PatchRecord(
                id="openssl=3.0.15-1", packages=(FixedPackage("openssl", "3.0.15-1", "debian:12"),)
            ),
            True,
            id="one-package-version",
        ),
        pytest.param(
            PatchRecord(id="DSA-1", packages=(FixedPackage("openssl", "3.0.15-1", "debian:12"),)),
            False,
            id="advisory",
        ),
        pytest.param(PatchRecord(id="openssl=3.0.15-1"), False, id="no-package"),
    ],
)
def test_a_package_update_is_one_package_version(record: PatchRecord, expected: bool) -> None:
    """A record is a package update when its id is `name=version` of its only package."""
    assert expected == patches.is_package_update(record)


def test_supersedence_is_linked_both_ways_and_idempotently() -> None:
    """`supersedes` of one record completes `superseded_by` of the others, once."""
    records = (
        PatchRecord(id="KB1"),
        PatchRecord(id="KB2", superseded_by=("KB9",)),
        PatchRecord(id="KB3", supersedes=("KB1", "KB2")),
    )
    linked = patches.link_supersedence(records)
    assert [("KB3",), ("KB3", "KB9"), ()] == [r.superseded_by for r in linked]
    assert linked == patches.link_supersedence(linked)
