"""Package version ordering: dpkg (Debian, Ubuntu), rpm EVR (RHEL family) and Windows builds.

Purely computational, no side effects. Every `compare_*` returns -1, 0 or 1 like C's `strcmp`:
negative when the first version is older.

- dpkg ordering is python-debian's (`debian.debian_support.version_compare`), the reference
  Python implementation of dpkg's algorithm: epochs, `~` before anything (`1.0~rc1 < 1.0`),
  `+deb12u1` after the plain revision.
- rpm ordering is rpm's own `rpmvercmp` (lib/rpmvercmp.c), transcribed below: no maintained
  pure-Python comparator exists on PyPI (`rpm-vercmp` was last released in 2018; `rpm-version` is
  a compiled binding), and the algorithm is forty lines. EVRs compare epoch, then version, then
  release, and a missing epoch is 0, as in `rpmverCmp`.
- Windows builds compare numerically, component by component (`10.0.17763.5329`).

Comparisons are cached: a fleet repeats the same (installed, fixed) pairs on every host, so the
second host with the same packages costs dictionary look-ups only.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import TYPE_CHECKING

from debian.debian_support import version_compare as _debian_version_compare

from controller.core.patches import EventKind, RangeEvent

if TYPE_CHECKING:
    from collections.abc import Iterable

    from controller.core.patches import VersionRange

_CACHE_SIZE = 1 << 16


class Scheme(StrEnum):
    """How versions of an ecosystem are ordered."""

    DPKG = "dpkg"
    RPM = "rpm"
    WINDOWS = "windows"


_DPKG_FAMILIES = frozenset({"debian", "ubuntu"})
# Families whose packages we cannot order (apk); applicability skips them instead of guessing.
_UNSUPPORTED_FAMILIES = frozenset({"alpine"})


def scheme_for_release(release: str) -> Scheme | None:
    """The ordering of a release key's packages: `debian:12` -> dpkg, `rhel:9` -> rpm."""
    family = release.split(":", 1)[0]
    if family in _DPKG_FAMILIES:
        return Scheme.DPKG
    if family in _UNSUPPORTED_FAMILIES or not family:
        return None
    return Scheme.RPM


def compare(scheme: Scheme, a: str, b: str) -> int:
    """Order two versions of one scheme."""
    if scheme is Scheme.DPKG:
        return compare_dpkg(a, b)
    if scheme is Scheme.RPM:
        return compare_rpm(a, b)
    return compare_windows_build(a, b)


# --- dpkg ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compare_dpkg(a: str, b: str) -> int:
    """dpkg's ordering of two `[epoch:]upstream[-revision]` versions.

    Raises ValueError for a string that is not a Debian version.
    """
    if a == b:
        return 0
    result = int(_debian_version_compare(a, b))
    return (result > 0) - (result < 0)


def join_dpkg(version: str, *, epoch: str | None = None, revision: str | None = None) -> str:
    """A dpkg version from an inventory's parts: `1:9.2p1-2+deb12u6`.

    Agents split versions differently (Patchman reports `43` and `1` for `43-1`); an epoch of 0
    is the same as none in dpkg, so it is dropped.
    """
    text = version
    if revision:
        text = f"{text}-{revision}"
    if epoch and epoch != "0" and ":" not in version:
        text = f"{epoch}:{text}"
    return text


# --- rpm ----------------------------------------------------------------------------------


def _segment_end(text: str, start: int, *, digits: bool) -> int:
    end = start
    while end < len(text) and (_isdigit(text[end]) if digits else _isalpha(text[end])):
        end += 1
    return end


def _isdigit(char: str) -> bool:
    return "0" <= char <= "9"


def _isalpha(char: str) -> bool:
    # rpm's risalpha is ASCII only: other letters are separators, like punctuation.
    return "a" <= char <= "z" or "A" <= char <= "Z"


def _is_separator(char: str) -> bool:
    return not (_isdigit(char) or _isalpha(char)) and char not in "~^"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def rpmvercmp(a: str, b: str) -> int:  # noqa: C901, PLR0911, PLR0912 - a faithful transcription of rpmvercmp.c
    """rpm's segment comparison of two version (or release) strings."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and _is_separator(a[i]):
            i += 1
        while j < len(b) and _is_separator(b[j]):
            j += 1
        one = a[i] if i < len(a) else ""
        two = b[j] if j < len(b) else ""
        # A tilde sorts before everything, even the end of the string.
        if "~" in (one, two):
            if one != "~":
                return 1
            if two != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        # A caret sorts after the end of the string but before any other segment.
        if "^" in (one, two):
            if not one:
                return -1
            if not two:
                return 1
            if one != "^":
                return 1
            if two != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (one and two):
            break
        numeric = _isdigit(one)
        end_a = _segment_end(a, i, digits=numeric)
        end_b = _segment_end(b, j, digits=numeric)
        if end_b == j:
            # Segments of different types: a numeric one is newer than an alpha one.
            return 1 if numeric else -1
        seg_a, seg_b = a[i:end_a], b[j:end_b]
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = end_a, end_b
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def parse_evr(text: str) -> tuple[str, str, str | None]:
    """(epoch, version, release) of `[epoch:]version[-release]`; the epoch defaults to `0`."""
    epoch, colon, rest = text.partition(":")
    if not colon or not epoch.isdigit():
        epoch, rest = "0", text
    version, dash, release = rest.rpartition("-")
    if not dash:
        return epoch, rest, None
    return epoch, version, release


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compare_rpm(a: str, b: str) -> int:
    """rpm's ordering of two `[epoch:]version[-release]` strings (`rpmverCmp`).

    The release is compared only when both sides have one, as rpm does for dependency ranges.
    """
    if a == b:
        return 0
    epoch_a, version_a, release_a = parse_evr(a)
    epoch_b, version_b, release_b = parse_evr(b)
    result = rpmvercmp(epoch_a, epoch_b) or rpmvercmp(version_a, version_b)
    if result == 0 and release_a is not None and release_b is not None:
        result = rpmvercmp(release_a, release_b)
    return result


def join_evr(version: str, *, epoch: str | None = None, release: str | None = None) -> str:
    """An rpm EVR from an inventory's parts: `2:4.4.1-21.el9_2` (`0:` when the epoch is absent)."""
    text = f"{version}-{release}" if release else version
    if ":" in version:
        return text
    return f"{epoch or '0'}:{text}"


# --- Windows ------------------------------------------------------------------------------


def parse_windows_build(text: str) -> tuple[int, ...]:
    """`(10, 0, 17763, 5329)` for `10.0.17763.5329`; ValueError when it is not dotted numbers."""
    parts = text.strip().split(".")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{text!r} is not a Windows build such as 10.0.17763.5329")
    return tuple(int(part) for part in parts)


def windows_build_line(text: str) -> tuple[int, int, int] | None:
    """The OS line of a build: `(10, 0, 17763)` for 10.0.17763.5329, None when not an OS build.

    The first three components name a Windows release (17763 is Windows 10 1809 and Server 2019);
    the fourth is the update revision that KBs raise.
    """
    try:
        parts = parse_windows_build(text)
    except ValueError:
        return None
    if len(parts) != 4:
        return None
    return parts[0], parts[1], parts[2]


def compare_windows_build(a: str, b: str) -> int:
    """Numeric ordering of two builds; missing trailing components count as 0."""
    parts_a, parts_b = parse_windows_build(a), parse_windows_build(b)
    width = max(len(parts_a), len(parts_b))
    padded_a = parts_a + (0,) * (width - len(parts_a))
    padded_b = parts_b + (0,) * (width - len(parts_b))
    return (padded_a > padded_b) - (padded_a < padded_b)


# --- OSV ranges -----------------------------------------------------------------------------


def affected_fix(
    scheme: Scheme,
    installed: str,
    ranges: Iterable[VersionRange],
    affected_versions: Iterable[str] = (),
) -> str | None:
    """The fixed version that repairs `installed`, or None when it is not affected or unfixed.

    Purely computational. The OSV schema's evaluation (ossf.github.io/osv-schema, "Evaluation"):
    a version is affected when it is one of `affected_versions` or lies in one of `ranges`; a
    range's events are sorted by version (`introduced: 0` first) and walked: `introduced` at or
    below the version opens an interval, `fixed` at or below it closes it, `last_affected` below
    it closes it, and `limit` caps the whole range (no version at or above it is in the range).
    So `introduced 0, fixed 2.0-1, introduced 2.1-1, fixed 2.1-3` affects 1.9 (fix 2.0-1) and
    2.1-2 (fix 2.1-3) but not 2.0-1. The fix is the lowest `fixed` event above `installed`,
    preferring the range that affects it. A version the scheme cannot parse is never affected
    (a comparison that fails cannot be judged; applicability never invents a finding).
    """
    try:
        ranges = tuple(ranges)
        affected = [events for events in ranges if is_in_range(scheme, installed, events)]
        listed = any(compare(scheme, installed, v) == 0 for v in affected_versions)
        if not affected and not listed:
            return None
        return _lowest_fix_above(scheme, installed, affected or ranges)
    except ValueError:
        return None


def is_in_range(scheme: Scheme, version: str, events: VersionRange) -> bool:
    """Whether one OSV range makes `version` affected (see `affected_fix`); ValueError when a
    version cannot be parsed."""
    limits = [e.version for e in events if e.kind is EventKind.LIMIT and e.version != "*"]
    if any(compare(scheme, version, limit) >= 0 for limit in limits):
        return False
    ordered = sorted(
        (e for e in events if e.kind is not EventKind.LIMIT),
        key=functools.cmp_to_key(functools.partial(_compare_event, scheme)),
    )
    affected = False
    for event in ordered:
        if event.kind is EventKind.INTRODUCED:
            if event.version == "0" or compare(scheme, version, event.version) >= 0:
                affected = True
        elif event.kind is EventKind.FIXED:
            if compare(scheme, version, event.version) >= 0:
                affected = False
        elif compare(scheme, version, event.version) > 0:  # last_affected
            affected = False
    return affected


def _compare_event(scheme: Scheme, a: RangeEvent, b: RangeEvent) -> int:
    zero_a = a.kind is EventKind.INTRODUCED and a.version == "0"
    zero_b = b.kind is EventKind.INTRODUCED and b.version == "0"
    if zero_a or zero_b:
        return zero_b - zero_a
    return compare(scheme, a.version, b.version)


def _lowest_fix_above(scheme: Scheme, installed: str, ranges: Iterable[VersionRange]) -> str | None:
    fixes = [
        e.version
        for events in ranges
        for e in events
        if e.kind is EventKind.FIXED and compare(scheme, installed, e.version) < 0
    ]
    if not fixes:
        return None
    return min(fixes, key=functools.cmp_to_key(functools.partial(compare, scheme)))
