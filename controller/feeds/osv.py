"""OSV advisories of Linux distributions: Ubuntu (USN and Ubuntu CVE records), Debian (DSA, DLA),
AlmaLinux, Rocky Linux, Red Hat and Alpine. One JSON file is one record.

Mapping (see docs/feeds.md): id; `summary` is the title; `published`/`modified`; CVEs from the id
itself, `aliases`, `related`, `upstream` (`UBUNTU-CVE-…` loses its prefix) and Ubuntu's `cves_map`;
severity from Ubuntu priorities, else the `Important:` prefix of AlmaLinux/Rocky summaries, else
the CVSS band of the highest score; rating from the CVSS vectors; the ecosystem gives the OS
release (`Ubuntu:Pro:16.04:LTS` -> `ubuntu:16.04`, `Rocky Linux:9` -> `rocky:9`,
`Red Hat:rhel_eus:9.2::appstream` -> `rhel:9`); the fixed versions come from `ranges[].events[]
.fixed`, per Ubuntu binary package when Ubuntu lists them. Debian names only the source package
(and so do Ubuntu CVE entries without binaries, purl `arch=src`): such entries get arch `source`
and hosts match them through their binaries' source name and source version.
Ecosystems that are not operating systems (PyPI, npm, …) are skipped. `withdrawn` is kept.
"""

from __future__ import annotations

import functools
import lzma
import re
import zipfile
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from controller.core import modules
from controller.core.patches import (
    SOURCE_ARCH,
    EventKind,
    FixedPackage,
    PatchRecord,
    RangeEvent,
    release_key,
)
from controller.core.versions import Scheme, compare, is_in_range, scheme_for_release
from controller.feeds.common import (
    MAX_FILE_BYTES,
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
    pointer,
    read_bytes,
    read_date,
    read_datetime,
    require_object,
    severity_from_rating,
    severity_word,
    vendor_for,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from pathlib import Path

    from controller.core.patches import VersionRange


def accepts(path: Path) -> bool:
    """OSV records are JSON files, or zip archives of them (osv.dev's `<ecosystem>/all.zip`)."""
    return path.suffix.lower() in {".json", ".zip"}


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:  # noqa: ARG001 - OSV names its ecosystems
    """The record of one OSV file, or the error that prevented it; every record of a zip
    archive, each error positioned as `member:position`."""
    if path.suffix.lower() == ".zip":
        return _parse_zip(path, name)
    try:
        document = require_object(load_json(read_bytes(path)), "")
        record = parse_record(document, source=f"osv:{name}")
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    warning = _unmatchable(record)
    return FeedResult(
        records=(record,), warnings=(FeedError(name, "/affected", warning),) if warning else ()
    )


def _unmatchable(record: PatchRecord) -> str:
    """Why the record can match no host ("" when it can): a withdrawn one is meant not to."""
    if record.packages or record.withdrawn:
        return ""
    return (
        f"{record.id} can match no host: no affected entry of an operating-system ecosystem"
        " has a fixed version in an ECOSYSTEM range"
    )


# Errors zipfile raises for a damaged, encrypted or unsupported archive or member.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    lzma.LZMAError,
)


def _parse_zip(path: Path, name: str) -> FeedResult:
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        return FeedResult.failure(name, "", f"cannot read the zip archive: {exc}")
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    warnings: list[FeedError] = []
    with archive:
        members = sorted(
            (i for i in archive.infolist() if not i.is_dir() and accepts_member(i.filename)),
            key=lambda info: info.filename,
        )
        budget = MAX_FILE_BYTES
        for number, info in enumerate(members):
            try:
                data = _read_member(archive, info, budget)
                if len(data) > budget:
                    message = f"the archive holds more than {MAX_FILE_BYTES} bytes; refused"
                    rest = f"{len(members) - number} member(s) not read"
                    errors.append(FeedError(name, info.filename, f"{message} ({rest})"))
                    break
                budget -= len(data)
                record = parse_record(
                    require_object(load_json(data), ""), source=f"osv:{name}:{info.filename}"
                )
            except RecordError as exc:
                position = f"{info.filename}:{exc.position}".rstrip(":")
                errors.append(FeedError(name, position, exc.message))
                continue
            records.append(record)
            if warning := _unmatchable(record):
                warnings.append(FeedError(name, f"{info.filename}:/affected", warning))
    return FeedResult(
        records=tuple(records),
        errors=tuple(errors),
        warnings=tuple(warnings),
        failed=len(members) - len(records),  # every member read is a record or failed
    )


def accepts_member(filename: str) -> bool:
    """The JSON members of an archive (not macOS resource forks)."""
    return filename.lower().endswith(".json") and "__MACOSX/" not in filename


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """At most `budget + 1` bytes of a member: more than `budget` means the archive decompresses
    past what any real feed holds (a zip bomb), whatever its headers claim."""
    try:
        with archive.open(info) as stream:
            return stream.read(budget + 1)
    except _ZIP_ERRORS as exc:
        raise RecordError("", f"cannot read this member: {exc}") from None


def parse_record(doc: dict[str, Any], *, source: str) -> PatchRecord:
    """A patch record from one OSV document (purely computational)."""
    record_id = get_str(doc, "id", "", required=True)
    affected = _affected(doc)
    summary = get_str(doc, "summary", "")
    packages = _with_streams(tuple(pkg for entry in affected for pkg in entry.packages), summary)
    releases = tuple(sorted({entry.release for entry in affected}))
    vectors = _vectors(doc, affected)
    rating = max_rating(cvss_base_score(vector) for vector in vectors)
    modified = read_datetime(get_str(doc, "modified", ""), "/modified")
    # `published` is optional in the schema; a record without it was published when last changed
    released = read_date(get_str(doc, "published", ""), "/published") or (
        modified.date() if modified else None
    )
    return PatchRecord(
        id=record_id,
        title=summary or _first_line(get_str(doc, "details", "")),
        vendor=vendor_for(releases[0]) if releases else "",
        product=join_names(entry.source for entry in affected),
        os=OsFamily.LINUX,
        os_versions=releases,
        classification=classification_from_id(record_id, Classification.SECURITY),
        severity=_severity(summary, affected, rating),
        released=released,
        modified=modified,
        rating=rating,
        cves=_cves(doc, record_id, affected),
        packages=packages,
        url=_advisory_url(doc),
        withdrawn=bool(get_str(doc, "withdrawn", "")),
        source=source,
        extra=_extra(affected),
    )


def _with_streams(packages: tuple[FixedPackage, ...], summary: str) -> tuple[FixedPackage, ...]:
    """Modular fixed builds (`.module+el8…`, `.module_el8…`) with the module stream the title
    names (`Low: php:7.4 security update`): AlmaLinux and Rocky OSV records carry the stream
    nowhere else. A title naming several streams leaves the stream unknown."""
    stream = modules.stream_in_title(summary)
    if stream is None:
        return packages
    return tuple(
        replace(p, module=stream) if p.module is None and modules.is_modular(p.version) else p
        for p in packages
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
    affected = _affected_spec(entry, at, release)
    if affected is None:
        return ()
    binaries = get_list(ecosystem_specific, "binaries", pointer(at, "ecosystem_specific"))
    if binaries:
        # Ubuntu: the hosts install binary packages, each with its own fixed version.
        found = []
        for index, raw in enumerate(binaries):
            binary_at = pointer(at, "ecosystem_specific", "binaries", index)
            binary = require_object(raw, binary_at)
            name = get_str(binary, "binary_name", binary_at, required=True)
            version = get_str(binary, "binary_version", binary_at) or affected.newest
            found.append(affected.package(name, version, release, None, source))
        return tuple(found)
    purl = get_str(get_dict(entry, "package", at), "purl", pointer(at, "package"))
    arch = SOURCE_ARCH if _names_source(purl, release) else None
    fixed = affected.package(source, affected.newest, release, arch, source if arch else None)
    stream = _purl_stream(purl)
    return (replace(fixed, module=stream) if stream else fixed,)


_RPMMOD = re.compile(r"[?&]rpmmod=([^&#]+)")


def _purl_stream(purl: str) -> str | None:
    """`php:7.4` from Red Hat's purl qualifier `rpmmod=php:7.4:8100020240102:a1b2c3d4`."""
    match = _RPMMOD.search(purl)
    if match is None:
        return None
    try:
        return modules.parse_stream(unquote(match.group(1)))
    except ValueError:
        return None  # an unreadable qualifier: the release marker still says "modular"


def _names_source(purl: str, release: str) -> bool:
    # Debian's OSV names source packages (purl `?arch=source`); RPM distributions name binaries.
    # Ubuntu's CVE records name the source too, spelt `arch=src` (`…/rabbitmq-server?arch=src
    # ?distro=noble`): their versions are the source's, compared with the binaries' source.
    if "arch=source" in purl or release.startswith("debian:"):
        return True
    return purl.startswith("pkg:deb/") and _DEB_SOURCE_PURL.search(purl) is not None


_DEB_SOURCE_PURL = re.compile(r"[?&]arch=src(?![A-Za-z0-9])")


_EVENT_KINDS = {kind.value: kind for kind in EventKind}
# Range types whose versions are the distribution's own (`type` may be absent in old records).
_ORDERED_TYPES = frozenset({"ECOSYSTEM", ""})


class _AffectedSpec:
    """The usable ranges and listed versions of one affected entry, and its newest fix."""

    __slots__ = ("newest", "ranges", "simple", "versions")

    def __init__(
        self, ranges: tuple[VersionRange, ...], versions: tuple[str, ...], scheme: Scheme | None
    ) -> None:
        fixes = [e.version for events in ranges for e in events if e.kind is EventKind.FIXED]
        self.newest = _newest(fixes, scheme)
        # `introduced 0, fixed X` (one interval from the start) is what `version` alone says.
        self.simple = len(ranges) == 1 and {(e.kind, e.version) for e in ranges[0]} == {
            (EventKind.INTRODUCED, "0"),
            (EventKind.FIXED, self.newest),
        }
        self.ranges = ranges
        self.versions = _uncovered(versions, ranges, scheme) if scheme else ()

    def package(
        self, name: str, version: str, release: str, arch: str | None, source: str | None
    ) -> FixedPackage:
        """The fixed package; ranges are kept when they say more than "below `version`"."""
        if (self.simple and not self.versions) or version != self.newest:
            # A binary versioned apart from its source (Ubuntu) cannot use the source's ranges.
            return FixedPackage(name, version, release, arch, source)
        return FixedPackage(name, version, release, arch, source, self.ranges, self.versions)


def _affected_spec(entry: dict[str, Any], at: str, release: str) -> _AffectedSpec | None:
    """The entry's ranges, or None when it has no fix (an unfixed entry has nothing to install)."""
    ranges: list[VersionRange] = []
    for index, raw in enumerate(get_list(entry, "ranges", at)):
        range_at = pointer(at, "ranges", index)
        osv_range = require_object(raw, range_at)
        events = _events(osv_range, range_at)
        if get_str(osv_range, "type", range_at).upper() in _ORDERED_TYPES and events:
            # GIT ranges name commits and SEMVER ranges order by SemVer, which misorders
            # distribution versions (`2.6.1-2ubuntu0.9` would be a pre-release): neither can be
            # compared with an installed package, so only the listed `versions` of such
            # entries count, and an entry without a fixed version yields no package.
            ranges.append(_with_start(events))
    versions = []
    for index, value in enumerate(get_list(entry, "versions", at)):
        if not isinstance(value, str) or not value.strip():
            raise RecordError(pointer(at, "versions", index), "expected a version (text)")
        versions.append(value.strip())
    if not any(e.kind is EventKind.FIXED for events in ranges for e in events):
        return None
    return _AffectedSpec(tuple(ranges), tuple(versions), scheme_for_release(release))


def _events(osv_range: dict[str, Any], at: str) -> VersionRange:
    events = []
    for index, raw in enumerate(get_list(osv_range, "events", at)):
        event_at = pointer(at, "events", index)
        event = require_object(raw, event_at)
        if len(event) != 1 or next(iter(event)) not in _EVENT_KINDS:
            expected = "exactly one of introduced, fixed, last_affected, limit"
            raise RecordError(event_at, f"expected {expected}, got {sorted(event)}")
        key, value = next(iter(event.items()))
        if not isinstance(value, str) or not value.strip():
            raise RecordError(pointer(event_at, key), "expected a version (text)")
        events.append(RangeEvent(_EVENT_KINDS[key], value.strip()))
    return tuple(events)


def _with_start(events: VersionRange) -> VersionRange:
    """The schema requires an `introduced` event per range; a range that has none (some older
    records give only `fixed`) is read as starting from the first version, as its author means."""
    if any(event.kind is EventKind.INTRODUCED for event in events):
        return events
    return (RangeEvent(EventKind.INTRODUCED, "0"), *events)


def _newest(versions: list[str], scheme: Scheme | None) -> str:
    """The newest of the fixed versions (the last one given when they cannot be ordered)."""
    if scheme is None:
        return versions[-1]
    try:
        return max(versions, key=functools.cmp_to_key(functools.partial(compare, scheme)))
    except ValueError:
        return versions[-1]


def _uncovered(
    versions: tuple[str, ...], ranges: tuple[VersionRange, ...], scheme: Scheme
) -> tuple[str, ...]:
    """The listed versions the ranges do not already make affected (usually none: Debian and
    Ubuntu list every affected version below the fix). Unparseable versions are dropped."""
    kept = []
    for version in versions:
        try:
            if not any(is_in_range(scheme, version, events) for events in ranges):
                kept.append(version)
        except ValueError:
            continue
    return tuple(kept)


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
