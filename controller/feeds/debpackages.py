"""Debian `Packages` indexes of an update suite (bookworm-security, bookworm-updates), plain or
compressed: every package version is one patch (`openssl=3.0.15-1~deb12u1`, DESIGN §1).

An index does not say which release it belongs to, so `release` (`debian:12`) is required. An
index whose file name says `security` yields security patches; any other (`-updates`, point
releases) bug fixes, as Patchman classifies them. A stanza without `Package` or `Version` is an
error at its line; the others import.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from controller.core.patches import FixedPackage, PatchRecord, package_update_id
from controller.feeds.common import FeedError, FeedResult, RecordError, read_bytes, vendor_for
from controller.kinds.common import Classification, OsFamily

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_NAME = re.compile(r"^(?:.*[-_])?Packages(?:\.(?:gz|xz|bz2))?$")
Stanza = dict[str, str]


def accepts(path: Path) -> bool:
    """`Packages`, `Packages.gz`, `…_main_binary-amd64_Packages` as apt names them."""
    return _NAME.match(path.name) is not None


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:
    """One record per package version of the index."""
    if not release:
        message = "a Packages index does not name its release: pass release, e.g. debian:12"
        return FeedResult.failure(name, "", message)
    try:
        text = read_bytes(path).decode("utf-8")
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    except UnicodeDecodeError as exc:
        return FeedResult.failure(name, f"byte {exc.start}", "not UTF-8 text")
    classification = (
        Classification.SECURITY if "security" in path.name.lower() else Classification.BUGFIX
    )
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    for line, stanza in stanzas(text):
        try:
            records.append(
                stanza_record(stanza, release=release, classification=classification, source=name)
            )
        except RecordError as exc:
            errors.append(FeedError(name, f"line {line}", exc.message))
    return FeedResult(records=tuple(records), errors=tuple(errors), failed=len(errors))


def stanzas(text: str) -> Iterator[tuple[int, Stanza]]:
    """(first line, fields) of each deb822 stanza; continuation lines are joined to their field.

    A line that is neither `Field: value` nor a continuation becomes the pseudo-field
    `_malformed`, and a field given twice `_duplicate`, so the caller can report it at the
    stanza's line.
    """
    stanza: Stanza = {}
    start = 0
    field = ""
    # deb822 separates lines by LF only; `str.splitlines` would also split at form feeds and
    # Unicode separators inside a value and shift every later line number.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            if stanza:
                yield start, stanza
            stanza, field = {}, ""
            continue
        if not stanza:
            start = number
        if line[0] in " \t" and field:
            stanza[field] += "\n" + line.strip()
        elif ":" in line and line[0] not in " \t#":
            field, _, value = line.partition(":")
            if field in stanza:
                # dpkg refuses a field given twice; keeping either value would be a guess
                stanza.setdefault("_duplicate", f"line {number}: {field}")
            stanza[field] = value.strip()
        elif line[0] != "#":
            stanza.setdefault("_malformed", f"line {number}: {line[:60]!r}")
    if stanza:
        yield start, stanza


def stanza_record(
    stanza: Stanza, *, release: str, classification: Classification, source: str
) -> PatchRecord:
    """The patch record of one package stanza (purely computational)."""
    if "_malformed" in stanza:
        raise RecordError("", f"not a `Field: value` line ({stanza['_malformed']})")
    if "_duplicate" in stanza:
        raise RecordError("", f"a field is given twice ({stanza['_duplicate']})")
    name, version = stanza.get("Package", ""), stanza.get("Version", "")
    if not name or not version:
        raise RecordError("", "a stanza lacks its Package or Version field")
    source_name, source_version = _source(stanza.get("Source", ""), name)
    if source_version == version:
        source_version = None  # the common case, stored as dpkg-query prints it: implied
    arch = stanza.get("Architecture") or None
    return PatchRecord(
        id=package_update_id(name, version),
        title=f"{name} {version}",
        vendor=vendor_for(release),
        product=source_name,
        os=OsFamily.LINUX,
        os_versions=(release,),
        classification=classification,
        packages=(
            FixedPackage(name, version, release, arch, source_name, source_version=source_version),
        ),
        source=f"deb-packages:{source}",
    )


def _source(field: str, name: str) -> tuple[str, str | None]:
    """(source name, source version or None) of a `Source` field: `inetutils (2:2.4-2+deb12u3)`
    names a source whose version differs from the binary's; a bare name (or none) shares it
    (deb-control(5))."""
    source_name, _, rest = field.strip().partition(" ")
    source_version = rest.strip().removeprefix("(").removesuffix(")").strip()
    return source_name or name, source_version or None
