"""`controller.core.enrichment`: supersedence completed from the whole catalogue, KB ids made
canonical, and agents' metadata filling only what the catalogue lacks (DESIGN §4)."""

from __future__ import annotations

from itertools import permutations
from typing import Any

import pytest

from controller.core.applicability import ApplicabilityIndex
from controller.core.enrichment import ReportedMetadata, canonical_id, complete_supersedence
from controller.core.patches import FixedPackage, PatchRecord, package_update_id
from controller.kinds.common import Classification, Severity

COMPLETE = PatchRecord(
    "KB5034127",
    title="2026-01 Cumulative Update",
    classification=Classification.SECURITY,
    severity=Severity.IMPORTANT,
    cves=("CVE-2026-0001",),
    rating=7.5,
)
BARE = PatchRecord("KB5035000")


def package(version: str) -> PatchRecord:
    fixed = FixedPackage("openssl", version, "debian:12", arch="amd64")
    return PatchRecord(package_update_id("openssl", version), packages=(fixed,))


# --- supersedence --------------------------------------------------------------------------


def test_supersedes_of_a_later_import_completes_superseded_by() -> None:
    """January's KB is superseded by February's that names it in `supersedes`."""
    january = PatchRecord("KB1000001")
    february = PatchRecord("KB1000002", supersedes=("KB1000001",))
    actual = complete_supersedence(ApplicabilityIndex([january, february]))
    assert {"KB1000001": ("KB1000002",), "KB1000002": ()} == {
        pid: r.superseded_by for pid, r in actual.items()
    }


def test_own_superseded_by_is_kept_and_merged_sorted() -> None:
    """What the record says and what the catalogue says are merged, sorted, without duplicates."""
    old = PatchRecord("KB1000001", superseded_by=("KB1000009",))
    new = PatchRecord("KB1000002", supersedes=("KB1000001",))
    again = PatchRecord("KB1000009", supersedes=("KB1000001",))
    actual = complete_supersedence(ApplicabilityIndex([old, new, again]))
    assert ("KB1000002", "KB1000009") == actual["KB1000001"].superseded_by


def test_record_already_complete_is_the_same_object() -> None:
    """A record the catalogue adds nothing to is returned unchanged (not copied)."""
    old = PatchRecord("KB1000001", superseded_by=("KB1000002",))
    new = PatchRecord("KB1000002", supersedes=("KB1000001",))
    assert complete_supersedence(ApplicabilityIndex([old, new]))["KB1000001"] is old


def test_higher_package_versions_supersede_lower() -> None:
    """Package-version patches of one package and release: every higher version supersedes."""
    versions = [package(v) for v in ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "3.0.15-1~deb12u1")]
    actual = complete_supersedence(ApplicabilityIndex(versions))
    ids = [r.id for r in versions]
    assert [(ids[1], ids[2]), (ids[2],), ()] == [actual[i].superseded_by for i in ids]


def test_self_reference_is_ignored() -> None:
    """A record naming itself as its successor is not superseded by itself."""
    odd = PatchRecord("KB1000001", supersedes=("KB1000001",))
    assert () == complete_supersedence(ApplicabilityIndex([odd]))["KB1000001"].superseded_by


# --- canonical ids -------------------------------------------------------------------------

CANONICAL_CASES = [
    pytest.param("5034127", None, "KB5034127", id="bare-number"),
    pytest.param("kb5034127", None, "KB5034127", id="lowercase-prefix"),
    pytest.param("KB5034127", None, "KB5034127", id="exact"),
    pytest.param("2026-01 Cumulative Update", "5034127", "KB5034127", id="kb-field"),
    pytest.param("9999999", None, "9999999", id="unknown-kept-as-reported"),
    pytest.param("USN-1-1", "KB9999999", "USN-1-1", id="unknown-with-unknown-kb"),
]


@pytest.mark.parametrize(("reported", "kb", "expected"), CANONICAL_CASES)
def test_canonical_id(reported: str, kb: str | None, expected: str) -> None:
    """An agent's KB spelling (or `kb` field) maps to the catalogue's id; unknown ids stay."""
    assert expected == canonical_id(ApplicabilityIndex([COMPLETE]), reported, kb)


# --- reported metadata ---------------------------------------------------------------------


def test_needs_only_for_incomplete_or_unknown_records() -> None:
    """A complete record needs nothing; a record with a gap and an unknown id do."""
    metadata = ReportedMetadata({COMPLETE.id: COMPLETE, BARE.id: BARE})
    assert (False, True, True) == (
        metadata.needs(COMPLETE.id),
        metadata.needs(BARE.id),
        metadata.needs("KB0000001"),
    )


@pytest.mark.parametrize(
    "missing",
    ["severity", "classification", "title", "cves", "rating"],
)
def test_one_gap_makes_a_record_need_metadata(missing: str) -> None:
    """Each of severity, classification, title, CVEs and rating counts as a gap."""
    empty: dict[str, Any] = {
        "severity": Severity.UNSPECIFIED,
        "classification": Classification.OTHER,
        "title": "",
        "cves": (),
        "rating": None,
    }
    record = PatchRecord(**{**_fields(COMPLETE), missing: empty[missing]})
    assert ReportedMetadata({record.id: record}).needs(record.id)


def _fields(record: PatchRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "title": record.title,
        "classification": record.classification,
        "severity": record.severity,
        "cves": record.cves,
        "rating": record.rating,
    }


AGENT_ENTRY = {
    "title": "Agent title",
    "classification": "Critical",
    "severity": "High",
    "cves": ["CVE-2026-9999"],
    "rating": 9.8,
}


def test_catalogue_values_win() -> None:
    """A complete record is kept as it is, whatever agents say."""
    metadata = ReportedMetadata({COMPLETE.id: COMPLETE})
    metadata.note(COMPLETE.id, AGENT_ENTRY)
    assert COMPLETE == metadata.apply()[COMPLETE.id]


def test_gaps_are_filled_from_agents() -> None:
    """Every empty field of a catalogue record takes the agent's value (severity folded)."""
    record = PatchRecord("KB5035000", vendor="microsoft", product="Windows")
    metadata = ReportedMetadata({record.id: record})
    metadata.note(record.id, AGENT_ENTRY)
    expected = PatchRecord(
        "KB5035000",
        vendor="microsoft",
        product="Windows",
        title="Agent title",
        classification=Classification.CRITICAL,
        severity=Severity.IMPORTANT,
        cves=("CVE-2026-9999",),
        rating=9.8,
    )
    assert expected == metadata.apply()[record.id]


def test_partial_record_keeps_what_it_has() -> None:
    """Only the missing fields are filled; present ones are the catalogue's."""
    record = PatchRecord("KB5035000", title="Catalogue title", severity=Severity.LOW)
    metadata = ReportedMetadata({record.id: record})
    metadata.note(record.id, AGENT_ENTRY)
    actual = metadata.apply()[record.id]
    assert ("Catalogue title", Severity.LOW, Classification.CRITICAL, ("CVE-2026-9999",), 9.8) == (
        actual.title,
        actual.severity,
        actual.classification,
        actual.cves,
        actual.rating,
    )


def test_agents_own_patch_is_added() -> None:
    """A patch the catalogue lacks is added with what agents said."""
    metadata = ReportedMetadata({})
    metadata.note("VENDOR-1", {"title": "Vendor fix", "classification": "bugfix"})
    expected = PatchRecord("VENDOR-1", title="Vendor fix", classification=Classification.BUGFIX)
    assert {"VENDOR-1": expected} == metadata.apply()


def test_unknown_words_leave_gaps() -> None:
    """Unknown classification words and non-numeric ratings fill nothing."""
    metadata = ReportedMetadata({BARE.id: BARE})
    metadata.note(BARE.id, {"classification": "Whatever", "rating": "high", "cves": "CVE-1"})
    assert BARE == metadata.apply()[BARE.id]


ENTRIES = [
    {
        "title": "b title",
        "classification": "bugfix",
        "severity": "Low",
        "cves": ["CVE-2"],
        "rating": 4.0,
    },
    {"title": "a title", "classification": "security", "severity": "Moderate", "rating": 6.1},
    {"title": "c title", "classification": "critical", "cves": ["CVE-1", "CVE-2"], "rating": 5},
]


@pytest.mark.parametrize("order", list(permutations(range(3))), ids=lambda o: "-".join(map(str, o)))
def test_merge_is_order_independent(order: tuple[int, ...]) -> None:
    """Highest severity and rating, first classification, lexically first title, every CVE."""
    metadata = ReportedMetadata({})
    for index in order:
        metadata.note("X-1", ENTRIES[index])
    expected = PatchRecord(
        "X-1",
        title="a title",
        classification=Classification.SECURITY,
        severity=Severity.MODERATE,
        cves=("CVE-1", "CVE-2"),
        rating=6.1,
    )
    assert expected == metadata.apply()["X-1"]
