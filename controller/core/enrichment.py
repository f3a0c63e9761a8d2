"""The catalogue as the planner sees it: completed from the supersedence graph and from what
agents report about the patches they find missing.

Purely computational, no side effects. The planner decides per patch id from one record
(`ObservedState.patch`), shared by every device, so enrichment works on records, not on scans:

- `complete_supersedence`: each record's `superseded_by` gains what the whole catalogue says
  (another record's `supersedes`, higher versions of a package-version patch), so a patch
  imported in January and replaced by a February import is superseded (not-applicable,
  DESIGN §3 rules 4 and 6) exactly as if both months had been imported together.
- `ReportedMetadata`: agents may name patches the catalogue lacks, or describe ones whose record
  has no severity or classification. Their words fill those gaps (DESIGN §4: "an agent's own
  metadata fills what the catalogue lacks"); the catalogue's values always win where it has
  them, so one patch looks the same on every device. Agents that disagree are merged in an
  order-independent way (highest severity and rating, the first classification in the
  vocabulary's order, the lexically first title, every CVE), so the plan does not depend on the
  order devices are read in.
- `canonical_id`: an agent naming a KB as `5034127` (or in its `kb` field) means the catalogue's
  `KB5034127`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from controller.core.patches import PatchRecord
from controller.kinds.common import Classification, Severity

if TYPE_CHECKING:
    from collections.abc import Mapping

    from controller.core.applicability import ApplicabilityIndex

_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}  # critical first
_CLASSIFICATION_RANK = {c: rank for rank, c in enumerate(Classification)}  # security first
_CLASSIFICATIONS = {c.value: c for c in Classification}


def complete_supersedence(index: ApplicabilityIndex) -> dict[str, PatchRecord]:
    """Every record of the index with `superseded_by` completed from the whole catalogue."""
    completed: dict[str, PatchRecord] = {}
    for patch_id, record in index.records.items():
        successors = index.superseded_by(patch_id) - {patch_id}
        if successors - set(record.superseded_by):
            merged = tuple(sorted(successors | set(record.superseded_by)))
            record = replace(record, superseded_by=merged)  # noqa: PLW2901 - the completed copy
        completed[patch_id] = record
    return completed


def canonical_id(index: ApplicabilityIndex, patch_id: str, kb: str | None = None) -> str:
    """The catalogue's id for a reported patch (KB spellings unified); the id itself when the
    catalogue does not know it."""
    record = index.get(patch_id)
    if record is None and kb:
        record = index.get(kb)
    return record.id if record is not None else patch_id


@dataclass(slots=True)
class _Reported:
    title: str = ""
    classification: Classification | None = None
    severity: Severity = Severity.UNSPECIFIED
    cves: set[str] = field(default_factory=set)
    rating: float | None = None

    def add(self, entry: Mapping[str, Any]) -> None:
        title = entry.get("title")
        if isinstance(title, str) and title and (not self.title or title < self.title):
            self.title = title
        classification = _CLASSIFICATIONS.get(str(entry.get("classification") or "").lower())
        if classification is not None and (
            self.classification is None
            or _CLASSIFICATION_RANK[classification] < _CLASSIFICATION_RANK[self.classification]
        ):
            self.classification = classification
        severity = Severity.parse(str(entry.get("severity") or ""))
        if _SEVERITY_RANK[severity] < _SEVERITY_RANK[self.severity]:
            self.severity = severity
        cves = entry.get("cves")
        if isinstance(cves, list):
            self.cves.update(str(cve) for cve in cves)
        rating = entry.get("rating")
        if isinstance(rating, int | float) and (self.rating is None or rating > self.rating):
            self.rating = float(rating)


class ReportedMetadata:
    """What agents said about patches, collected while a fleet is read, then laid over the
    catalogue (`apply`). Only entries that can add something are worth noting (`needs`)."""

    __slots__ = ("_catalogue", "_complete", "_reported")

    def __init__(self, catalogue: Mapping[str, PatchRecord]) -> None:
        self._catalogue = catalogue
        # Checked once per record here, not once per (device, patch) while the fleet is read.
        self._complete = frozenset(pid for pid, record in catalogue.items() if not _lacks(record))
        self._reported: dict[str, _Reported] = {}

    def needs(self, patch_id: str) -> bool:
        """Whether an agent's words about `patch_id` could fill a gap of the catalogue."""
        return patch_id not in self._complete

    def note(self, patch_id: str, entry: Mapping[str, Any]) -> None:
        """Remember an agent's metadata of a missing patch (an entry of its scan)."""
        self._reported.setdefault(patch_id, _Reported()).add(entry)

    def apply(self) -> dict[str, PatchRecord]:
        """The catalogue with the gaps filled and the agents' own patches added."""
        merged = dict(self._catalogue)
        for patch_id, reported in self._reported.items():
            record = merged.get(patch_id) or PatchRecord(id=patch_id)
            merged[patch_id] = _filled(record, reported)
        return merged


def _lacks(record: PatchRecord) -> bool:
    return (
        record.severity is Severity.UNSPECIFIED
        or record.classification is Classification.OTHER
        or not record.title
        or not record.cves
        or record.rating is None
    )


def _filled(record: PatchRecord, reported: _Reported) -> PatchRecord:
    changes: dict[str, Any] = {}
    if record.severity is Severity.UNSPECIFIED and reported.severity is not Severity.UNSPECIFIED:
        changes["severity"] = reported.severity
    if record.classification is Classification.OTHER and reported.classification is not None:
        changes["classification"] = reported.classification
    if not record.title and reported.title:
        changes["title"] = reported.title
    if not record.cves and reported.cves:
        changes["cves"] = tuple(sorted(reported.cves))
    if record.rating is None and reported.rating is not None:
        changes["rating"] = reported.rating
    return replace(record, **changes) if changes else record
