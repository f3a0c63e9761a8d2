"""Debian's own security advisories: the security tracker's advisory lists and per-CVE urgency.

Two public formats of the Debian security tracker (salsa.debian.org/security-tracker-team/
security-tracker), read together from one feed directory:

- `data/DSA/list` and `data/DLA/list` (also DTSA): one entry per advisory,

      [12 Sep 2024] DSA-5767-1 openssl - security update
      \t{CVE-2024-5535 CVE-2024-6119}
      \t[bookworm] - openssl 3.0.15-1~deb12u1

  a header `[DD Mon YYYY] ID source-package - title`, an optional `{CVE ...}` line and one
  `[codename] - source-package version` line per release fixed. Fix lines whose version is a
  marker (`<not-affected>`, `<unfixed>`, `<no-dsa>`, `<end-of-life>`, ...) and `NOTE:` lines
  carry no fix and are skipped. Every advisory becomes one record (id `DSA-5767-1`) whose
  packages are *source* packages (arch `source`): hosts match them through the source of their
  installed binaries (`controller.core.applicability`), and an Approval that names the id covers
  the binaries built from that source (`controller.core.advisories`).
- the tracker's JSON (`https://security-tracker.debian.org/tracker/data/json`):
  `{source-package: {CVE: {"releases": {codename: {"status", "fixed_version", "urgency"}}}}}`.
  Only the urgency is used: an advisory's severity is the highest urgency of its CVEs for its
  source package in its release (high -> important, medium -> moderate, low and unimportant ->
  low; `not yet assigned` and `end-of-life` say nothing). Debian has no "critical" urgency.

Classification is security (regression updates of an advisory fix a security update). A header
or fix line that cannot be read is an error at its line and its advisory is not imported; the
others are.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from controller.core.patches import SOURCE_ARCH, FixedPackage, PatchRecord, release_key
from controller.feeds.common import (
    FeedError,
    FeedResult,
    RecordError,
    cve_ids,
    load_json,
    read_bytes,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

# Debian releases by codename (debian.org/releases); a codename not listed is warned about.
CODENAMES: dict[str, str] = {
    "woody": "3.0",
    "sarge": "3.1",
    "etch": "4.0",
    "lenny": "5.0",
    "squeeze": "6",
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
}
# The tracker's urgency words (security-tracker `bin/check-syntax`, `lib/python/bugs.py`).
URGENCIES: dict[str, Severity] = {
    "high": Severity.IMPORTANT,
    "medium": Severity.MODERATE,
    "low": Severity.LOW,
    "unimportant": Severity.LOW,
}
TRACKER_URL = "https://security-tracker.debian.org/tracker/"

_LIST_NAME = re.compile(r"^(?:(?:DSA|DLA|DTSA)[-_.])?list$", re.IGNORECASE)
_HEADER = re.compile(
    r"^\[(?P<day>\d{1,2}) (?P<month>[A-Z][a-z]{2}) (?P<year>\d{4})\] "
    r"(?P<id>(?:DSA|DLA|DTSA)-\d+(?:-\d+)?) (?P<package>[a-z0-9][a-z0-9+.-]*)"
    r"(?: - (?P<title>.*))?$"
)
_CVES = re.compile(r"^\{(?P<ids>[^{}]*)\}$")
_FIX = re.compile(
    r"^\[(?P<codename>[a-z-]+)\] - (?P<package>[a-z0-9][a-z0-9+.-]*) (?P<version>\S+)(?: .*)?$"
)
_MONTHS = {
    month: number
    for number, month in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}

# (release key, source package, CVE id) -> the tracker's urgency, in our words
Urgencies = dict[tuple[str, str, str], Severity]


def accepts(path: Path) -> bool:
    """`DSA/list`, `DLA/list` (or `DSA-list`, `dla.list`), and the tracker JSON (`json`,
    `*.json`)."""
    return _LIST_NAME.match(path.name) is not None or path.name == "json" or path.suffix == ".json"


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:
    """The advisories of a list file, or the urgencies of the tracker JSON (`release` unused:
    both formats name their releases)."""
    del release
    try:
        data = read_bytes(path)
        if _LIST_NAME.match(path.name) is None:
            return FeedResult(cve_severities=urgencies(load_json(data)))
        text = data.decode("utf-8")
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    except UnicodeDecodeError as exc:
        return FeedResult.failure(name, f"byte {exc.start}", "not UTF-8 text")
    return parse_list(text, source=name)


def parse_list(text: str, *, source: str) -> FeedResult:
    """Every advisory of a DSA/DLA list (purely computational); errors and warnings name `source`
    and the line."""
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    warnings: list[FeedError] = []
    for start, lines in _entries(text):
        try:
            record, skipped = entry_record(lines, source=source)
        except RecordError as exc:
            errors.append(FeedError(source, exc.position, exc.message))
            continue
        warnings.extend(FeedError(source, where, message) for where, message in skipped)
        if not record.packages:
            message = f"{record.id} names no fixed version of a known release: it matches no host"
            warnings.append(FeedError(source, f"line {start}", message))
        records.append(record)
    return FeedResult(
        records=tuple(records), errors=tuple(errors), warnings=tuple(warnings), failed=len(errors)
    )


def _entries(text: str) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(first line, numbered lines) of each advisory; lines before the first header are one
    entry of their own, so that they are reported."""
    entry: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("[") and not line[:1].isspace() and entry:
            yield entry[0][0], entry
            entry = []
        entry.append((number, line))
    if entry:
        yield entry[0][0], entry


def entry_record(
    lines: list[tuple[int, str]], *, source: str
) -> tuple[PatchRecord, list[tuple[str, str]]]:
    """The record of one advisory entry, and (position, message) warnings for fix lines of
    releases this importer does not know. Raises RecordError at the line that cannot be read."""
    number, header = lines[0]
    match = _HEADER.match(header)
    if match is None:
        expected = "`[DD Mon YYYY] DSA-NNNN-N source-package - title`"
        raise RecordError(
            f"line {number}", f"expected an advisory header {expected}, got {header[:60]!r}"
        )
    advisory = match["id"]
    released = _date(match, number)
    cves: list[str] = []
    packages: list[FixedPackage] = []
    skipped: list[tuple[str, str]] = []
    for at, raw in lines[1:]:
        line = raw.strip()
        if line.startswith("NOTE:"):
            continue
        if (found := _CVES.match(line)) is not None:
            cves.extend(found["ids"].split())
            continue
        fix = _FIX.match(line)
        if fix is None:
            expected = "`{CVE-…}` or `[codename] - package version`"
            message = f"{advisory}: expected {expected}, got {line[:60]!r}"
            raise RecordError(f"line {at}", message)
        if fix["version"].startswith("<"):
            continue  # <not-affected>, <unfixed>, <no-dsa>, ...: nothing to install
        version = CODENAMES.get(fix["codename"])
        if version is None:
            skipped.append(
                (
                    f"line {at}",
                    f"{advisory}: unknown Debian codename {fix['codename']!r}; fix not imported",
                )
            )
            continue
        packages.append(
            FixedPackage(
                fix["package"],
                fix["version"],
                release_key("debian", version),
                SOURCE_ARCH,
                fix["package"],
            )
        )
    unique = tuple(dict.fromkeys(packages))
    title = match["title"] or "security update"
    return (
        PatchRecord(
            id=advisory,
            title=f"{match['package']} - {title}",
            vendor="Debian",
            product=match["package"],
            os=OsFamily.LINUX,
            os_versions=tuple(sorted({p.release for p in unique})),
            classification=Classification.SECURITY,
            released=released,
            cves=cve_ids(cves),
            packages=unique,
            url=f"{TRACKER_URL}{advisory}",
            source=f"debian-security:{source}",
        ),
        skipped,
    )


def _date(match: re.Match[str], number: int) -> date:
    stamp = f"{match['day']} {match['month']} {match['year']}"
    problem = RecordError(f"line {number}", f"not a date: {stamp!r} (expected DD Mon YYYY)")
    month = _MONTHS.get(match["month"])
    if month is None:
        raise problem
    try:
        return date(int(match["year"]), month, int(match["day"]))
    except ValueError:
        raise problem from None


def urgencies(document: Any) -> Urgencies:
    """(release, source package, CVE) -> severity from the tracker JSON (purely computational).

    Entries that are not objects, codenames not in `CODENAMES` and urgencies that say nothing
    (`not yet assigned`) are left out; a trailing `*` (the tracker's mark of an urgency not yet
    reviewed) is ignored.
    """
    found: Urgencies = {}
    for package, issues in _items(document):
        for cve, issue in _items(issues):
            releases = issue.get("releases") if isinstance(issue, dict) else None
            for codename, state in _items(releases):
                version = CODENAMES.get(codename)
                word = state.get("urgency") if isinstance(state, dict) else None
                severity = URGENCIES.get(str(word).rstrip("*").strip()) if word else None
                if version is not None and severity is not None:
                    found[(release_key("debian", version), package, cve)] = severity
    return found


def _items(value: object) -> Iterable[tuple[str, Any]]:
    return value.items() if isinstance(value, dict) else ()
