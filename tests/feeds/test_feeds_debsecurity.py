"""Debian's advisory lists (DSA, DLA) and the security tracker's per-CVE urgency."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from controller.core.patches import SOURCE_ARCH, FixedPackage, PatchRecord
from controller.feeds import FeedError, read_feed
from controller.feeds.debsecurity import urgencies
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures" / "debsecurity"


def advisory(
    advisory_id: str,
    package: str,
    *,
    released: date,
    cves: tuple[str, ...],
    fixes: tuple[tuple[str, str], ...],
    severity: Severity,
    source: str,
    title: str = "security update",
) -> PatchRecord:
    return PatchRecord(
        id=advisory_id,
        title=f"{package} - {title}",
        vendor="Debian",
        product=package,
        os=OsFamily.LINUX,
        os_versions=tuple(sorted({release for release, _ in fixes})),
        classification=Classification.SECURITY,
        severity=severity,
        released=released,
        cves=cves,
        packages=tuple(
            FixedPackage(package, version, release, SOURCE_ARCH, package)
            for release, version in fixes
        ),
        url=f"https://security-tracker.debian.org/tracker/{advisory_id}",
        source=f"debian-security:{source}",
    )


def test_lists_and_tracker_urgency() -> None:
    """Each advisory is one record of source packages, with the highest urgency of its CVEs."""
    result = read_feed(FIXTURES, FeedFormat.DEBIAN_SECURITY)
    expected = (
        advisory(
            "DLA-4401-1",
            "openssl",
            released=date(2026, 10, 20),
            cves=("CVE-2026-6119",),
            fixes=(("debian:11", "1.1.1w-0+deb11u4"),),
            severity=Severity.LOW,  # `low**`: the tracker's not-yet-reviewed mark is ignored
            source="DLA/list",
        ),
        advisory(
            "DLA-4390-1",
            "tzdata",
            released=date(2026, 10, 3),
            cves=(),
            fixes=(("debian:11", "2026b-0+deb11u1"),),
            severity=Severity.UNSPECIFIED,
            source="DLA/list",
            title="new timezone database",
        ),
        advisory(
            "DSA-6021-1",
            "inetutils",
            released=date(2026, 10, 2),
            cves=("CVE-2026-40117",),
            fixes=(("debian:12", "2:2.4-2+deb12u4"),),
            severity=Severity.IMPORTANT,  # high
            source="DSA/list",
        ),
        advisory(
            "DSA-6010-1",
            "openssl",
            released=date(2026, 9, 12),
            cves=("CVE-2026-5535", "CVE-2026-6119"),
            fixes=(("debian:12", "3.0.15-1~deb12u1"),),  # bullseye <not-affected>: no fix
            severity=Severity.MODERATE,  # low and medium: the highest
            source="DSA/list",
        ),
        advisory(
            "DSA-5999-1",
            "util-linux",
            released=date(2026, 8, 28),
            cves=("CVE-2026-28085",),
            fixes=(("debian:12", "2.38.1-5+deb12u4"), ("debian:13", "2.41-5+deb13u1")),
            severity=Severity.LOW,  # unimportant
            source="DSA/list",
        ),
    )
    assert (expected, (), ()) == (result.records, result.errors, result.warnings)


def test_without_tracker_json_severity_is_unspecified(tmp_path: Path) -> None:
    """A list read alone gives no severity: the urgency is the tracker JSON's."""
    (tmp_path / "list").write_bytes((FIXTURES / "DSA" / "list").read_bytes())
    result = read_feed(tmp_path / "list", FeedFormat.DEBIAN_SECURITY)
    assert [Severity.UNSPECIFIED] * 3 == [r.severity for r in result.records]


@pytest.mark.parametrize(
    ("text", "expected_ids", "expected_errors"),
    [
        pytest.param(
            "[02 Oct 2026] DSA-6021-1 inetutils - security update\n"
            "\t[bookworm] - inetutils\n"
            "[12 Sep 2026] DSA-6010-1 openssl - security update\n"
            "\t[bookworm] - openssl 3.0.15-1~deb12u1\n",
            ["DSA-6010-1"],
            [
                FeedError(
                    "list",
                    "line 2",
                    "DSA-6021-1: expected `{CVE-…}` or `[codename] - package version`, got "
                    "'[bookworm] - inetutils'",
                )
            ],
            id="fix-line-without-version",
        ),
        pytest.param(
            "[31 Feb 2026] DSA-6021-1 inetutils - security update\n"
            "\t[bookworm] - inetutils 2:2.4-2+deb12u4\n",
            [],
            [FeedError("list", "line 1", "not a date: '31 Feb 2026' (expected DD Mon YYYY)")],
            id="impossible-date",
        ),
        pytest.param(
            "\t{CVE-2026-1}\n[02 Oct 2026] DSA-6021-1 inetutils - security update\n"
            "\t[bookworm] - inetutils 2:2.4-2+deb12u4\n",
            ["DSA-6021-1"],
            [
                FeedError(
                    "list",
                    "line 1",
                    "expected an advisory header `[DD Mon YYYY] DSA-NNNN-N source-package - "
                    "title`, got '\\t{CVE-2026-1}'",
                )
            ],
            id="lines-before-the-first-header",
        ),
    ],
)
def test_errors_name_the_line(
    tmp_path: Path, text: str, expected_ids: list[str], expected_errors: list[FeedError]
) -> None:
    """A malformed entry is an error at its line; the other advisories import."""
    (tmp_path / "list").write_text(text, encoding="utf-8")
    result = read_feed(tmp_path / "list", FeedFormat.DEBIAN_SECURITY)
    errors = [FeedError("list", e.position, e.message) for e in result.errors]
    assert (expected_ids, expected_errors) == ([r.id for r in result.records], errors)


def test_unknown_codename_and_no_fix_warn(tmp_path: Path) -> None:
    """A fix for a release this importer does not know, and an advisory without a fix, warn."""
    (tmp_path / "list").write_text(
        "[02 Oct 2031] DSA-9000-1 inetutils - security update\n"
        "\t[zorro] - inetutils 2:2.9-1+deb16u1\n",
        encoding="utf-8",
    )
    result = read_feed(tmp_path / "list", FeedFormat.DEBIAN_SECURITY)
    warnings = [(w.position, w.message) for w in result.warnings]
    assert [
        ("line 2", "DSA-9000-1: unknown Debian codename 'zorro'; fix not imported"),
        ("line 1", "DSA-9000-1 names no fixed version of a known release: it matches no host"),
    ] == warnings
    assert ["DSA-9000-1"] == [r.id for r in result.records]


def test_tracker_json_errors_are_positioned(tmp_path: Path) -> None:
    """Tracker JSON that does not parse is one error at its line and column."""
    (tmp_path / "json").write_text('{"openssl": {', encoding="utf-8")
    result = read_feed(tmp_path, FeedFormat.DEBIAN_SECURITY)
    assert [
        ("line 1, column 14", "invalid JSON: Expecting property name enclosed in double quotes")
    ] == [(e.position, e.message) for e in result.errors]


def test_urgencies_skip_what_says_nothing() -> None:
    """Unassigned urgencies, unknown codenames and odd entries give no severity."""
    document = json.loads(
        '{"curl": {"CVE-2026-1": {"releases": {'
        '"bookworm": {"urgency": "not yet assigned"}, "sid": {"urgency": "high"},'
        '"trixie": {"urgency": "medium"}}}, "CVE-2026-2": []}, "x": 3}'
    )
    assert {("debian:13", "curl", "CVE-2026-1"): Severity.MODERATE} == urgencies(document)
