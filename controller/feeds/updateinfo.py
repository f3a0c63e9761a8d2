"""yum/dnf `updateinfo.xml` (repository errata), plain or compressed: one `<update>` is one record.

Mapping: `<id>`, `<title>`, `@type` (security, bugfix, enhancement, newpackage) -> classification,
`<severity>` (else the `Important:` prefix of the title), `<issued date>` (else the `<updated
date>`: some repositories write only that) and `<updated date>`,
CVEs from `<reference type="cve">`, fixed packages from `<pkglist>/<collection>/<package>` with
their EVR, arch and source RPM (and the module stream of the collection's `<module name= stream=
version= context= arch=/>`, for modular errata: `php:7.4`), and `<reboot_suggested>`. The release
comes from the `release` argument (updateinfo belongs to one repository of one release, and
PatchFeed says which), else from the `<release>` or collection name (`Rocky Linux 8`,
`almalinux-9-for-x86_64-…`, `Amazon Linux 2023`). An update that cannot be read is an error at
its element path; the others import.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from controller.core import modules
from controller.core.patches import FixedPackage, PatchRecord, release_key
from controller.feeds.common import (
    FeedError,
    FeedResult,
    RecordError,
    cve_ids,
    join_names,
    local_name,
    parse_xml,
    read_bytes,
    read_date,
    read_datetime,
    severity_word,
    vendor_for,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from xml.etree.ElementTree import Element

_TYPES = {
    "security": Classification.SECURITY,
    "bugfix": Classification.BUGFIX,
    "enhancement": Classification.ENHANCEMENT,
    "newpackage": Classification.FEATURE,
}
_SOURCE_ARCHES = frozenset({"src", "nosrc"})
UNKNOWN_RELEASE = "unknown"


def accepts(path: Path) -> bool:
    """`updateinfo.xml` files and their compressed forms, as repodata names them."""
    name = path.name.lower()
    return "updateinfo" in name and name.endswith((".xml", ".xml.gz", ".xml.xz", ".xml.bz2"))


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:
    """Every readable `<update>` of the file."""
    try:
        root = parse_xml(read_bytes(path))
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    if local_name(root) != "updates":
        return FeedResult.failure(name, f"/{local_name(root)}", "expected <updates>")
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    updates = [element for element in root if local_name(element) == "update"]
    for index, update in enumerate(updates, start=1):
        try:
            records.append(parse_update(update, release=release, source=f"updateinfo:{name}"))
        except RecordError as exc:
            # The id, when the update has one, finds the record faster than its position.
            update_id = _text(update, "id")
            message = f"{update_id}: {exc.message}" if update_id else exc.message
            errors.append(FeedError(name, f"/updates/update[{index}]{exc.position}", message))
    unknown = sum(1 for record in records if record.os_versions == (UNKNOWN_RELEASE,))
    if unknown:
        message = (
            f"{unknown} update(s) name no release this importer knows; their packages match no"
            " device until the feed is imported with a release (e.g. rocky:9)"
        )
        errors.append(FeedError(name, "", message))
    # Every update is a record or failed; the note on unknown releases fails none.
    return FeedResult(
        records=tuple(records), errors=tuple(errors), failed=len(updates) - len(records)
    )


def parse_update(update: Element, *, release: str | None, source: str) -> PatchRecord:
    """A patch record from one `<update>` element (purely computational)."""
    update_id = _text(update, "id")
    if not update_id:
        raise RecordError("/id", "required element is missing or empty")
    title = _text(update, "title")
    key = release or _release(update) or UNKNOWN_RELEASE
    packages = _packages(update, key)
    kind = update.get("type", "").strip().lower()
    modified = read_datetime(_attribute(update, "updated", "date"), "/updated/@date")
    released = read_date(_attribute(update, "issued", "date"), "/issued/@date")
    if released is None and modified is not None:
        released = modified.date()  # an erratum published once, never re-issued
    return PatchRecord(
        id=update_id,
        title=title,
        vendor=vendor_for(key) if key != UNKNOWN_RELEASE else update.get("from", ""),
        product=join_names(p.source_name or p.name for p in packages),
        os=OsFamily.LINUX,
        os_versions=(key,),
        classification=_TYPES.get(kind, Classification.OTHER),
        severity=_severity(_text(update, "severity"), title),
        released=released,
        modified=modified,
        cves=cve_ids(
            reference.get("id", "")
            for reference in update.iter()
            if local_name(reference) == "reference" and reference.get("type") == "cve"
        ),
        reboot_required=_reboot(update),
        packages=packages,
        url=_url(update),
        source=source,
    )


def _packages(update: Element, release: str) -> tuple[FixedPackage, ...]:
    found: dict[tuple[str, str, str | None], FixedPackage] = {}
    for package, stream in _listed_packages(update):
        name, version = package.get("name", ""), package.get("version", "")
        arch = package.get("arch") or None
        if not name or not version:
            raise RecordError("/pkglist//package", "a package lacks its name or version")
        if arch in _SOURCE_ARCHES:
            continue
        epoch = (package.get("epoch") or "0").strip()
        if not (epoch.isascii() and epoch.isdigit()):
            # rpm epochs are integers; `1:` glued to a word would silently reorder versions
            where = f"/pkglist//package[@name={name!r}]/@epoch"
            raise RecordError(where, f"epoch {epoch[:20]!r} is not a number")
        evr = f"{epoch}:{version}-{package.get('release', '')}".rstrip("-")
        source = _source_name(package.get("src", ""))
        fixed = FixedPackage(name, evr, release, arch, source, module=stream)
        found.setdefault((name, evr, arch), fixed)
    return tuple(found.values())


def _listed_packages(update: Element) -> Iterator[tuple[Element, str | None]]:
    """Every `<package>` of the update with the module stream of its collection (None when the
    collection has no `<module>`: a non-modular erratum)."""
    seen: set[int] = set()
    for collection in update.iter():
        if local_name(collection) != "collection":
            continue
        stream = _collection_stream(collection)
        for package in collection.iter():
            if local_name(package) == "package":
                seen.add(id(package))
                yield package, stream
    for package in update.iter():  # packages outside a collection (hand-written files)
        if local_name(package) == "package" and id(package) not in seen:
            yield package, None


def _collection_stream(collection: Element) -> str | None:
    module = next((c for c in collection if local_name(c) == "module"), None)
    if module is None:
        return None
    name, stream = module.get("name", "").strip(), module.get("stream", "").strip()
    try:
        return modules.parse_stream(f"{name}:{stream}")
    except ValueError:
        message = f"module needs a name and a stream, got {name!r}:{stream!r}"
        raise RecordError("/pkglist/collection/module", message) from None


_SRPM = re.compile(r"([^/]+)-[^-/]+-[^-/]+\.(?:no)?src\.rpm$")


def _source_name(src: str) -> str | None:
    """`firewalld` for `firewalld-0.8.2-7.el8_4.src.rpm` (also a URL ending in it)."""
    match = _SRPM.search(src)
    return match.group(1) if match else None


_SEVERITY_PREFIX = re.compile(r"^\s*(\w+)\s*:")


def _severity(text: str, title: str) -> Severity:
    word = severity_word(text) if text else None
    if word is not None:
        return word
    prefix = _SEVERITY_PREFIX.match(title)
    return (severity_word(prefix.group(1)) if prefix else None) or Severity.UNSPECIFIED


def _reboot(update: Element) -> bool | None:
    flags = [
        (element.text or "").strip().lower()
        for element in update.iter()
        if local_name(element) == "reboot_suggested"
    ]
    if any(flag in {"1", "true", "yes"} for flag in flags):
        return True
    return False if flags else None


def _url(update: Element) -> str | None:
    references = [r for r in update.iter() if local_name(r) == "reference" and r.get("href")]
    for kind in ("self", "erratum", "rhsa", "brsa"):
        for reference in references:
            if reference.get("type") == kind:
                return reference.get("href")
    return None


# Release names in <release> and <collection><name>, and the os-release ID they stand for.
_RELEASE_NAMES = (
    (re.compile(r"rocky\s*linux[\s-]*(\d+)", re.IGNORECASE), "rocky"),
    (re.compile(r"alma\s*linux[\s-]*(\d+)", re.IGNORECASE), "almalinux"),
    (re.compile(r"amazon[\s-]*linux[\s-]*(\d+)", re.IGNORECASE), "amzn"),
    (re.compile(r"red\s*hat\s*enterprise\s*linux[\s-]*(\d+)", re.IGNORECASE), "rhel"),
    (re.compile(r"oracle\s*linux[\s-]*(\d+)", re.IGNORECASE), "ol"),
    (re.compile(r"centos[\s-]*(?:linux|stream)?[\s-]*(\d+)", re.IGNORECASE), "centos"),
    (re.compile(r"fedora(?:\s*core)?[\s-]*(\d+)", re.IGNORECASE), "fedora"),
)


def _release(update: Element) -> str | None:
    candidates = [_text(update, "release")]
    candidates += [
        text
        for element in update.iter()
        if local_name(element) == "collection"
        for text in (element.get("short", ""), _text(element, "name"))
    ]
    for candidate in candidates:
        for pattern, family in _RELEASE_NAMES:
            match = pattern.search(candidate)
            if match:
                return release_key(family, match.group(1))
    return None


def _text(element: Element, tag: str) -> str:
    child = next((c for c in element if local_name(c) == tag), None)
    return (child.text or "").strip() if child is not None else ""


def _attribute(element: Element, tag: str, name: str) -> str:
    child = next((c for c in element if local_name(c) == tag), None)
    return child.get(name, "") if child is not None else ""
