"""OSV advisories of Linux distributions: Ubuntu (USN and Ubuntu CVE records), Debian (DSA, DLA),
AlmaLinux, Rocky Linux, Red Hat and Alpine. One JSON file is one record.

Mapping (see docs/feeds.md): id; `summary` is the title; `published`/`modified`; CVEs from the id
itself, `aliases`, `related`, `upstream` (`UBUNTU-CVE-…` loses its prefix) and Ubuntu's `cves_map`;
severity from Ubuntu priorities, else the `Important:` prefix of AlmaLinux/Rocky summaries, else
the CVSS band of the highest score; rating from the CVSS vectors; the ecosystem gives the OS
release (`Ubuntu:Pro:16.04:LTS` -> `ubuntu:16.04`, `Rocky Linux:9` -> `rocky:9`,
`Red Hat:rhel_eus:9.2::appstream` -> `rhel:9`); the fixed versions come from `ranges[].events[]
.fixed`, per Ubuntu binary package when Ubuntu lists them. Debian names only the source package:
such entries get arch `source` and hosts match them through their binaries' source name.
Ecosystems that are not operating systems (PyPI, npm, …) are skipped. `withdrawn` is kept.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from controller.core.patches import SOURCE_ARCH, FixedPackage, PatchRecord, release_key
from controller.feeds.common import (
    FeedError,
    FeedResult,
    RecordError,
    classification_from_id,
    cve_ids,
    cvss_base_score,
    get_dict,
    get_list,
    get_str,
    highest,
    join_names,
    load_json,
    max_rating,
    parse_date,
    parse_datetime,
    pointer,
    read_bytes,
    require_object,
    severity_from_rating,
    severity_word,
    vendor_for,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from pathlib import Path


def accepts(path: Path) -> bool:
    """OSV records are JSON files."""
    return path.suffix.lower() == ".json"


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:  # noqa: ARG001 - OSV names its ecosystems
    """The record of one OSV file, or the error that prevented it."""
    try:
        document = require_object(load_json(read_bytes(path)), "")
        record = parse_record(document, source=f"osv:{name}")
    except RecordError as exc:
        return FeedResult(errors=(FeedError(name, exc.position, exc.message),))
    return FeedResult(records=(record,))


def parse_record(doc: dict[str, Any], *, source: str) -> PatchRecord:
    """A patch record from one OSV document (purely computational)."""
    record_id = get_str(doc, "id", "", required=True)
    affected = _affected(doc)
    packages = tuple(pkg for entry in affected for pkg in entry.packages)
    releases = tuple(sorted({entry.release for entry in affected}))
    vectors = _vectors(doc, affected)
    rating = max_rating(cvss_base_score(vector) for vector in vectors)
    summary = get_str(doc, "summary", "")
    return PatchRecord(
        id=record_id,
        title=summary or _first_line(get_str(doc, "details", "")),
        vendor=vendor_for(releases[0]) if releases else "",
        product=join_names(entry.source for entry in affected),
        os=OsFamily.LINUX,
        os_versions=releases,
        classification=classification_from_id(record_id, Classification.SECURITY),
        severity=_severity(summary, affected, rating),
        released=parse_date(get_str(doc, "published", "")),
        modified=parse_datetime(get_str(doc, "modified", "")),
        rating=rating,
        cves=_cves(doc, record_id, affected),
        packages=packages,
        url=_advisory_url(doc),
        withdrawn=bool(get_str(doc, "withdrawn", "")),
        source=source,
        extra=_extra(affected),
    )


class _Affected:
    """One `affected[]` entry of an operating-system ecosystem, reduced to what we keep."""

    __slots__ = ("availability", "cve_severities", "packages", "release", "source", "vectors")

    def __init__(self, entry: dict[str, Any], at: str, release: str) -> None:
        package = get_dict(entry, "package", at)
        self.release = release
        self.source = get_str(package, "name", pointer(at, "package"), required=True)
        ecosystem_specific = get_dict(entry, "ecosystem_specific", at)
        self.availability = get_str(ecosystem_specific, "availability", at)
        self.packages = _fixed_packages(entry, at, self.source, release, ecosystem_specific)
        self.cve_severities, self.vectors = _cves_map(entry, at, ecosystem_specific)


def _affected(doc: dict[str, Any]) -> list[_Affected]:
    entries = []
    for index, raw in enumerate(get_list(doc, "affected", "")):
        at = pointer("/affected", index)
        entry = require_object(raw, at)
        ecosystem = get_str(get_dict(entry, "package", at), "ecosystem", pointer(at, "package"))
        release = ecosystem_release(ecosystem)
        if release is not None:
            entries.append(_Affected(entry, at, release))
    return entries


def _fixed_packages(
    entry: dict[str, Any],
    at: str,
    source: str,
    release: str,
    ecosystem_specific: dict[str, Any],
) -> tuple[FixedPackage, ...]:
    fixed = _fixed_versions(entry, at)
    if not fixed:
        return ()
    binaries = get_list(ecosystem_specific, "binaries", pointer(at, "ecosystem_specific"))
    if binaries:
        # Ubuntu: the hosts install binary packages, each with its own fixed version.
        found = []
        for index, raw in enumerate(binaries):
            binary_at = pointer(at, "ecosystem_specific", "binaries", index)
            binary = require_object(raw, binary_at)
            name = get_str(binary, "binary_name", binary_at, required=True)
            version = get_str(binary, "binary_version", binary_at) or fixed[-1]
            found.append(FixedPackage(name, version, release, None, source))
        return tuple(found)
    purl = get_str(get_dict(entry, "package", at), "purl", pointer(at, "package"))
    arch = SOURCE_ARCH if _names_source(purl, release) else None
    source_name = source if arch else None
    return tuple(FixedPackage(source, version, release, arch, source_name) for version in fixed)


def _names_source(purl: str, release: str) -> bool:
    # Debian's OSV names source packages (purl `?arch=source`); RPM distributions name binaries.
    return "arch=source" in purl or release.startswith("debian:")


def _fixed_versions(entry: dict[str, Any], at: str) -> list[str]:
    versions = []
    for index, raw in enumerate(get_list(entry, "ranges", at)):
        range_at = pointer(at, "ranges", index)
        ranges = require_object(raw, range_at)
        if get_str(ranges, "type", range_at) not in {"ECOSYSTEM", ""}:
            continue  # GIT and SEMVER ranges do not order distribution packages
        for event_index, event in enumerate(get_list(ranges, "events", range_at)):
            event_at = pointer(range_at, "events", event_index)
            value = get_str(require_object(event, event_at), "fixed", event_at)
            if value and value not in versions:
                versions.append(value)
    return versions


def _cves_map(
    entry: dict[str, Any], at: str, ecosystem_specific: dict[str, Any]
) -> tuple[dict[str, Severity], list[str]]:
    """Per-CVE Ubuntu priorities and CVSS vectors of one affected entry."""
    severities: dict[str, Severity] = {}
    vectors: list[str] = []
    priority = severity_word(get_str(ecosystem_specific, "ubuntu_priority", at))
    if priority is not None and priority is not Severity.UNSPECIFIED:
        severities[""] = priority  # Ubuntu CVE records rate the package, not each CVE
    map_at = pointer(at, "database_specific", "cves_map")
    cves_map = get_dict(get_dict(entry, "database_specific", at), "cves_map", at)
    for index, raw in enumerate(get_list(cves_map, "cves", map_at)):
        cve_at = pointer(map_at, "cves", index)
        cve = require_object(raw, cve_at)
        cve_id = get_str(cve, "id", cve_at)
        for score_index, raw_score in enumerate(get_list(cve, "severity", cve_at)):
            score_at = pointer(cve_at, "severity", score_index)
            score = require_object(raw_score, score_at)
            kind, value = get_str(score, "type", score_at), get_str(score, "score", score_at)
            if kind.startswith("CVSS"):
                vectors.append(value)
            elif kind.lower() == "ubuntu" and (word := severity_word(value)) is not None:
                severities[cve_id] = highest([word, severities.get(cve_id, Severity.UNSPECIFIED)])
    return severities, vectors


def _vectors(doc: dict[str, Any], affected: list[_Affected]) -> list[str]:
    vectors = [vector for entry in affected for vector in entry.vectors]
    for index, raw in enumerate(get_list(doc, "severity", "")):
        at = pointer("/severity", index)
        score = require_object(raw, at)
        if get_str(score, "type", at).startswith("CVSS"):
            vectors.append(get_str(score, "score", at))
    return vectors


_SUMMARY_SEVERITY = re.compile(r"^\s*(\w+)\s*:")


def _severity(summary: str, affected: list[_Affected], rating: float | None) -> Severity:
    """Ubuntu's priorities, else the summary prefix (`Important: …`), else the CVSS band."""
    ubuntu = highest(s for entry in affected for s in entry.cve_severities.values())
    if ubuntu is not Severity.UNSPECIFIED:
        return ubuntu
    match = _SUMMARY_SEVERITY.match(summary)
    if match and (word := severity_word(match.group(1))) is not None:
        # AlmaLinux writes `None:` for bug-fix advisories: no severity, and no CVSS fallback.
        return word
    return severity_from_rating(rating)


def _cves(doc: dict[str, Any], record_id: str, affected: list[_Affected]) -> tuple[str, ...]:
    candidates = [record_id]
    for key in ("aliases", "related", "upstream"):
        for index, value in enumerate(get_list(doc, key, "")):
            if not isinstance(value, str):
                raise RecordError(pointer("", key, index), "expected text")
            candidates.append(value.removeprefix("UBUNTU-"))
    candidates.extend(cve for entry in affected for cve in entry.cve_severities if cve)
    return cve_ids(candidates)


def _advisory_url(doc: dict[str, Any]) -> str | None:
    urls: list[tuple[int, str]] = []
    for index, raw in enumerate(get_list(doc, "references", "")):
        at = pointer("/references", index)
        reference = require_object(raw, at)
        url = get_str(reference, "url", at)
        if url:
            urls.append((0 if get_str(reference, "type", at) == "ADVISORY" else 1, url))
    return min(urls)[1] if urls else None


def _extra(affected: list[_Affected]) -> dict[str, str]:
    availability = sorted({entry.availability for entry in affected if entry.availability})
    return {"availability": "; ".join(availability)} if availability else {}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


# --- ecosystems -----------------------------------------------------------------------------

_EL_MAJOR = re.compile(r"(?:^|[^a-z])el(\d+)")
_NUMBER = re.compile(r"v?(\d+(?:\.\d+)?)")


def ecosystem_release(ecosystem: str) -> str | None:
    """The release key of an OSV ecosystem; None for ecosystems that are not an OS release.

    `Ubuntu:24.04:LTS` and `Ubuntu:Pro:16.04:LTS` -> `ubuntu:24.04`/`ubuntu:16.04`; `Debian:12`
    -> `debian:12`; `AlmaLinux:9` -> `almalinux:9`; `Rocky Linux:8` -> `rocky:8`;
    `Red Hat:rhel_eus:9.2::appstream` -> `rhel:9`; `Alpine:v3.18` -> `alpine:3.18`.
    """
    distro, _, rest = ecosystem.partition(":")
    family = distro.strip().lower()
    if family == "red hat":
        return _red_hat_release(rest)
    if family not in {"ubuntu", "debian", "almalinux", "rocky linux", "alpine"}:
        return None
    for part in rest.split(":"):
        match = _NUMBER.fullmatch(part.strip())
        if match:
            return release_key(family, match.group(1))
    return None


def _red_hat_release(rest: str) -> str | None:
    """`rhel_eus:9.2::appstream` -> `rhel:9`; layered products `…::el8` -> `rhel:8`."""
    el = _EL_MAJOR.search(rest.lower())
    if el:
        return f"rhel:{el.group(1)}"
    product, _, version = rest.partition(":")
    match = _NUMBER.match(version.strip())
    if match and product.startswith(("rhel", "enterprise_linux")):
        return release_key("rhel", match.group(1))
    return None
