"""`read_feed`: import every record of a feed file or directory, in one format."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from controller.core.patches import PatchRecord, link_supersedence
from controller.feeds import csaf, debpackages, debsecurity, msrc, native, osv, updateinfo
from controller.feeds.common import (
    FeedError,
    FeedResult,
    FormatReader,
    apply_cve_severities,
    highest,
)
from controller.kinds.common import Severity
from controller.kinds.feeds import FeedFormat

if TYPE_CHECKING:
    from pathlib import Path

T = TypeVar("T")

READERS: dict[FeedFormat, FormatReader] = {
    FeedFormat.NATIVE: native,
    FeedFormat.OSV: osv,
    FeedFormat.MSRC: msrc,
    FeedFormat.CSAF: csaf,
    FeedFormat.UPDATEINFO: updateinfo,
    FeedFormat.DEB_PACKAGES: debpackages,
    FeedFormat.DEBIAN_SECURITY: debsecurity,
}


def read_feed(
    path: Path, fmt: FeedFormat, *, release: str | None = None, label: str | None = None
) -> FeedResult:
    """Every record of `path` (a file, or a directory read recursively in sorted order).

    `release` names the OS release for formats that do not (`deb-packages`, where it is
    required, e.g. `debian:12`) and overrides the release `updateinfo` infers; the other formats
    name their releases themselves. Malformed files and records become errors (`failed` counts
    the records and documents that did not import); the rest imports. A path that does not
    exist, or a directory holding none of the format's files, is one error and nothing read
    (`documents` is 0).
    Errors name files by `label` (how the caller calls `path`: a repository path, a redacted
    URL) joined with the file's path under `path`; without it, by their local path.
    A patch read from several files becomes one record (see `_deduplicate`), and
    `superseded_by` is completed from the `supersedes` of the other records read. Per-CVE
    severities a file publishes (`debian-security`: the tracker JSON's urgency) raise the
    severity of the records read with it. Reading twice
    gives equal results.
    """
    reader = READERS[FeedFormat(fmt)]
    files = _files(path, reader)
    if files is None:
        return FeedResult.failure(label or str(path), "", "no such file or directory")
    if not files:
        return FeedResult.failure(label or str(path), "", _no_documents(FeedFormat(fmt)))
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    warnings: list[FeedError] = []
    failed = 0
    severities: dict[tuple[str, str, str], Severity] = {}
    for file, name in files:
        result = reader.parse_file(file, name=name, release=release)
        records.extend(result.records)
        failed += result.failed
        severities.update(result.cve_severities)
        shown = str(file) if label is None else _shown(label, name, single=file == path)
        errors.extend(FeedError(shown, e.position, e.message) for e in result.errors)
        warnings.extend(FeedError(shown, w.position, w.message) for w in result.warnings)
    if severities:
        records = list(apply_cve_severities(records, severities))
    return FeedResult(
        records=link_supersedence(_deduplicate(records)),
        errors=tuple(errors),
        warnings=tuple(warnings),
        failed=failed,
        documents=len(files),
    )


def _no_documents(fmt: FeedFormat) -> str:
    """Why a directory imported nothing: none of its files is of the format (an empty mirror,
    or the wrong --format)."""
    return (
        f"no {fmt.value} document in this directory (docs/feeds.md lists the file names each"
        " format reads); nothing imported"
    )


def _shown(label: str, name: str, *, single: bool) -> str:
    """`feeds/osv` + `USN-1.json` -> `feeds/osv/USN-1.json`; a single file is its label."""
    return label if single else f"{label.rstrip('/')}/{name}"


def _files(path: Path, reader: FormatReader) -> list[tuple[Path, str]] | None:
    """(file, name relative to the feed root) of every file to read, sorted; None if absent."""
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        return None
    found = [p for p in path.rglob("*") if p.is_file() and reader.accepts(p)]
    return [(p, p.relative_to(path).as_posix()) for p in sorted(found, key=lambda p: p.as_posix())]


def _deduplicate(records: list[PatchRecord]) -> list[PatchRecord]:
    """One record per id, at the place it was first read.

    An id read from several files is one patch described in parts (an MSRC month lists a KB
    for the CVEs of that month; AlmaLinux copies an advisory into each release's directory): the
    lists are united, the severity and rating are the highest, and the other fields come from the
    most recently modified copy.
    """
    merged: dict[str, PatchRecord] = {}
    for record in records:
        previous = merged.get(record.id)
        merged[record.id] = record if previous is None else _merge(previous, record)
    return list(merged.values())


def _merge(old: PatchRecord, new: PatchRecord) -> PatchRecord:
    if old == new:
        return old
    newest = new if _freshness(new) >= _freshness(old) else old

    def union(a: tuple[T, ...], b: tuple[T, ...]) -> tuple[T, ...]:
        return tuple(dict.fromkeys((*a, *b)))

    ratings = [r for r in (old.rating, new.rating) if r is not None]
    return replace(
        newest,
        os_versions=tuple(sorted(set(old.os_versions) | set(new.os_versions))),
        severity=highest([old.severity, new.severity]),
        rating=max(ratings) if ratings else None,
        cves=tuple(sorted(set(old.cves) | set(new.cves))),
        superseded_by=tuple(sorted(set(old.superseded_by) | set(new.superseded_by))),
        supersedes=tuple(sorted(set(old.supersedes) | set(new.supersedes))),
        packages=union(old.packages, new.packages),
        builds=union(old.builds, new.builds),
        withdrawn=newest.withdrawn,
    )


def _freshness(record: PatchRecord) -> tuple[str, str]:
    return (
        record.modified.isoformat() if record.modified else "",
        record.released.isoformat() if record.released else "",
    )
