"""Debian Packages indexes of update suites: one package-version patch per stanza."""

from __future__ import annotations

import gzip
from pathlib import Path

from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds import FeedError, read_feed
from controller.kinds.common import Classification, OsFamily
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
SECURITY = FIXTURES / "debpackages" / "bookworm-security-main-amd64-Packages"


def test_debpackages_security_index() -> None:
    """Each stanza is a `name=version` patch of the given release, classified by its suite."""
    result = read_feed(SECURITY, FeedFormat.DEB_PACKAGES, release="debian:12")

    def record(name: str, version: str, arch: str, source: str) -> PatchRecord:
        return PatchRecord(
            id=f"{name}={version}",
            title=f"{name} {version}",
            vendor="Debian",
            product=source,
            os=OsFamily.LINUX,
            os_versions=("debian:12",),
            classification=Classification.SECURITY,
            packages=(FixedPackage(name, version, "debian:12", arch, source),),
            source="deb-packages:bookworm-security-main-amd64-Packages",
        )

    expected = (
        record("openssh-client", "1:9.2p1-2+deb12u7", "amd64", "openssh"),
        record("openssl", "3.0.15-1~deb12u1", "amd64", "openssl"),
        record("ca-certificates", "20230311+deb12u1", "all", "ca-certificates"),
    )
    assert (expected, ()) == (result.records, result.errors)


def test_debpackages_updates_suite_is_bugfix_and_gzip_reads(tmp_path: Path) -> None:
    """An index whose name does not say security yields bug fixes; .gz is decompressed."""
    source = FIXTURES / "debpackages" / "bookworm-updates-main-amd64-Packages"
    packed = tmp_path / "bookworm-updates-main-amd64-Packages.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))

    result = read_feed(packed, FeedFormat.DEB_PACKAGES, release="debian:12")

    assert [
        ("tzdata=2099a-0+deb12u1", Classification.BUGFIX),
        ("openssl=3.0.16-1~deb12u1", Classification.BUGFIX),
    ] == [(r.id, r.classification) for r in result.records]


def test_debpackages_requires_a_release() -> None:
    """Without a release the index cannot be placed, and says how to fix it."""
    result = read_feed(SECURITY, FeedFormat.DEB_PACKAGES)

    message = "a Packages index does not name its release: pass release, e.g. debian:12"
    assert ((), (FeedError(str(SECURITY), "", message),)) == (result.records, result.errors)


def test_debpackages_malformed_stanzas_are_errors_at_their_line() -> None:
    """Stanzas without Version or with stray lines are errors; the good stanza imports."""
    path = FIXTURES / "malformed" / "broken-Packages"

    result = read_feed(path, FeedFormat.DEB_PACKAGES, release="debian:12")

    expected_errors = (
        FeedError(str(path), "line 5", "a stanza lacks its Package or Version field"),
        FeedError(
            str(path),
            "line 8",
            "not a `Field: value` line (line 8: 'this line is neither a field nor a continuation')",
        ),
    )
    assert (["good=1.0-1"], expected_errors) == (
        [r.id for r in result.records],
        result.errors,
    )
