"""Microsoft CVRF monthly documents (XML and JSON) turned into one record per KB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from controller.core.patches import PatchRecord, ProductBuild
from controller.feeds import FeedError, read_feed
from controller.kinds.common import Classification, OsFamily, Severity
from controller.kinds.feeds import FeedFormat

FIXTURES = Path(__file__).parent / "fixtures"
MALFORMED = FIXTURES / "malformed"
W1809 = "Windows 10 Version 1809 for x64-based Systems"
W21H2 = "Windows 10 Version 21H2 for x64-based Systems"
W22H2 = "Windows 10 Version 22H2 for x64-based Systems"
S2019 = "Windows Server 2019"


@pytest.fixture(scope="module")
def feed() -> tuple[dict[str, PatchRecord], tuple[FeedError, ...]]:
    result = read_feed(FIXTURES / "msrc", FeedFormat.MSRC)
    return {record.id: record for record in result.records}, result.errors


def test_msrc_xml_kb_record(feed: tuple[dict[str, PatchRecord], tuple[FeedError, ...]]) -> None:
    """A KB of the XML document gathers its CVEs, products, builds and supersedence."""
    expected = PatchRecord(
        id="KB9000001",
        title=f"2099-Jan Security Update KB9000001 for {W1809} and 1 more",
        vendor="Microsoft",
        product="Windows",
        os=OsFamily.WINDOWS,
        os_versions=(W1809, S2019),
        classification=Classification.SECURITY,
        severity=Severity.IMPORTANT,
        released=date(2099, 1, 13),
        modified=datetime(2099, 1, 20, tzinfo=UTC),
        rating=7.8,
        cves=("CVE-2099-0001",),
        superseded_by=("KB9000011",),
        supersedes=("KB8999991",),
        reboot_required=True,
        fixed_build="10.0.17763.9001",
        builds=(
            ProductBuild(W1809, "10.0.17763.9001", "11569", "Security Update"),
            ProductBuild(S2019, "10.0.17763.9001", "11571", "Security Update"),
        ),
        url="https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB9000001",
        source="msrc:cvrf-2099-Jan.xml",
        extra={"subtype": "Security Update", "document": "2099-Jan"},
    )
    records, _ = feed
    assert expected == records["KB9000001"]
    assert expected.extra == records["KB9000001"].extra


def test_msrc_kb_across_products_keeps_each_build_and_the_highest_severity(
    feed: tuple[dict[str, PatchRecord], tuple[FeedError, ...]],
) -> None:
    """One KB for 21H2 and 22H2 keeps both fixed builds, the highest severity and CVSS score."""
    record = feed[0]["KB9000002"]

    expected = (
        (
            ProductBuild(W21H2, "10.0.19044.9002", "11931", "Security Update"),
            ProductBuild(W22H2, "10.0.19045.9002", "12097", "Security Update"),
        ),
        None,
        Severity.CRITICAL,
        9.8,
        ("CVE-2099-0001", "CVE-2099-0002"),
        ("KB8999992", "KB8999993"),
        True,
    )
    assert expected == (
        record.builds,
        record.fixed_build,
        record.severity,
        record.rating,
        record.cves,
        record.supersedes,
        record.reboot_required,
    )


def test_msrc_json_form_reads_like_xml(
    feed: tuple[dict[str, PatchRecord], tuple[FeedError, ...]],
) -> None:
    """The MSRC API's JSON form (Value wrappers, numeric types) gives the same fields."""
    record = feed[0]["KB9000011"]

    expected = (
        "2099-Feb Security Update KB9000011 for " + W1809 + " and 1 more",
        Severity.CRITICAL,
        9.8,
        ("CVE-2099-0003",),
        ("KB9000001",),
        True,
        "10.0.17763.9011",
        date(2099, 2, 10),
        "Windows",
    )
    assert expected == (
        record.title,
        record.severity,
        record.rating,
        record.cves,
        record.supersedes,
        record.reboot_required,
        record.fixed_build,
        record.released,
        record.product,
    )


def test_msrc_skips_non_kb_fixes_and_reports_fixes_without_products(
    feed: tuple[dict[str, PatchRecord], tuple[FeedError, ...]],
) -> None:
    """Release notes are not KBs; a KB remediation naming no product is an error at its path."""
    records, errors = feed

    assert ["KB9000001", "KB9000002", "KB9000011"] == sorted(records)
    expected = FeedError(
        str(FIXTURES / "msrc" / "cvrf-2099-Jan.xml"),
        "/cvrfdoc/Vulnerability[2]/Remediations/Remediation[3]",
        "KB9000009 names no ProductID; skipped",
    )
    assert (expected,) == errors


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        pytest.param(
            "msrc-bomb.xml",
            "",
            "refused: declares the XML entity 'lol' (entities are never expanded)",
            id="entity-bomb",
        ),
        pytest.param(
            "msrc-external.xml",
            "",
            "refused: declares the XML entity 'secret' (entities are never expanded)",
            id="external-entity",
        ),
        pytest.param(
            "msrc-broken.xml", "line 7, column 3", "invalid XML: mismatched tag", id="bad-xml"
        ),
        pytest.param(
            "msrc-not-cvrf.json",
            "/DocumentTracking/Identification/ID",
            "not an MSRC CVRF document (no DocumentTracking/Identification/ID)",
            id="not-cvrf",
        ),
    ],
)
def test_msrc_hostile_or_malformed_documents_are_refused(
    name: str, position: str, message: str
) -> None:
    """Entity declarations are refused unexpanded; broken documents are one positioned error."""
    result = read_feed(MALFORMED / name, FeedFormat.MSRC)

    expected = ((), (FeedError(str(MALFORMED / name), position, message),))
    assert expected == (result.records, result.errors)
