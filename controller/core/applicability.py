"""Server-side applicability: which catalogue patches a device misses, computed from its inventory.

Purely computational, no side effects. The catalogue is indexed once (`ApplicabilityIndex`, by
release and package name, and by Windows build line); every device then costs one dictionary
look-up per installed package and one version comparison per candidate, so a new advisory can
re-evaluate the whole fleet without waiting for agents to rescan.

Rules (docs/feeds.md has the reasoning):
- Linux: a patch is missing when an installed package of the device's release (`debian:12`,
  `almalinux:9`) has a fixed version in the patch that is newer, by dpkg ordering on Debian and
  Ubuntu and by rpm EVR ordering elsewhere. When the feed gave version ranges (OSV records with
  several intervals, `last_affected`, `limit` or listed versions), the installed version must be
  affected by them, and the fix is the one that closes its interval (`versions.affected_fix`):
  a host between two affected intervals misses nothing. Packages match by binary name, or by
  source name for feeds that only name source packages (Debian OSV): then the *source* version
  the binary was built from is compared (`telnet 0.17+2.4-2+deb12u3` is built from
  `inetutils 2:2.4-2+deb12u3`), never the binary's own. Of an install-only package (kernels,
  installed at several versions side by side) only the newest installed version is judged
  (`kernels.judged_packages`). An architecture-specific
  fix only matches the same architecture (`i686` fixes do not apply to `x86_64` packages);
  `all`/`noarch` match any.
  Module streams (RHEL family, `modules.fix_applies`): a fixed build of a stream the host does
  not run (`php:8.2` on a `php:7.4` host) is not judged; without reported streams, modular builds
  (`.module+el8…`/`.module_el8…` releases) judge modular packages and others the rest. An
  installed build equal to one of a patch's fixed builds for the package is not missing that
  patch, even when another stream or context of the same patch sorts higher.
  An installed version that cannot be parsed is skipped, never guessed.
- Windows: a KB is missing when the device's OS build is on the line of one of the KB's fixed
  builds (`10.0.17763.x` is Windows 10 1809 / Server 2019) and below it. When the device says
  what it runs (`inventory.windows`: product name, installation type, architecture), only the
  builds of its own product count (`winproducts.product_matches`: `Windows Server 2022 (Server
  Core installation)` for a Server Core device). Of alternatives for one product released the
  same day (`Security Update` and `AzureHotpatch`, `Monthly Rollup` and `Security Only`) the
  device takes one channel's: the hotpatch only when it reports hotpatch enrolment, else the
  standard one (`winproducts.preferred_channels`). KBs for products that do not carry the OS
  build (.NET, Office) are left to the agent's own scan.
- Supersedence: a missing patch superseded by another missing patch is not reported: installing
  the newer one (a cumulative update, a newer package version) also fixes it. A superseded patch
  whose successor is not missing stays missing: the successor may not apply to the device.
  Package-version patches (`openssl=3.0.15-1~deb12u1`) are superseded by higher versions of the
  same package in the same release.
- Withdrawn patches are never missing.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING

from controller.core import kernels, modules, winproducts
from controller.core.patches import (
    SOURCE_ARCH,
    PatchRecord,
    VersionRange,
    is_package_update,
    normalize_kb,
)
from controller.core.versions import (
    Scheme,
    affected_fix,
    compare,
    join_dpkg,
    join_evr,
    parse_windows_build,
    scheme_for_release,
    windows_build_line,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_ANY_ARCH = frozenset({"", "all", "noarch", "any", SOURCE_ARCH})
FEED = "feed"


# --- inputs and results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """One package of a device's inventory, as the agent reports it (DESIGN §4)."""

    name: str
    version: str
    arch: str = ""
    epoch: str | None = None
    release: str | None = None  # rpm release or Debian revision, when reported apart
    source: str | None = None  # source package name (`openssh` for openssh-client)

    def full_version(self, scheme: Scheme) -> str:
        """The version in the ecosystem's own syntax: `1:9.2p1-2+deb12u6`, `0:1.13.0-9.el8`."""
        if scheme is Scheme.DPKG:
            return join_dpkg(self.version, epoch=self.epoch, revision=self.release)
        return join_evr(self.version, epoch=self.epoch, release=self.release)

    @property
    def source_name(self) -> str:
        """The source package: the reported one (without a `(version)` suffix), else the name."""
        return _lenient_source(self.source)[0] or self.name

    def source_version(self, scheme: Scheme) -> str:
        """The version of the source package the binary was built from, as dpkg prints it.

        `Source: inetutils (2:2.4-2+deb12u3)` gives `2:2.4-2+deb12u3`; a bare source name (or
        none) means the source version equals the binary's (dpkg-query's `${source:Version}`).
        """
        return _lenient_source(self.source)[1] or self.full_version(scheme)


@functools.lru_cache(maxsize=1 << 14)
def _lenient_source(text: str | None) -> tuple[str, str]:
    # Inventories stored before the report API checked the field may hold other text: its first
    # word is the name, as before, and the binary's version stands in for the source's.
    try:
        name, version = parse_source(text)
    except ValueError:
        return (text or "").split(" ", 1)[0], ""
    if _DEBIAN_SIGNED_KERNEL.fullmatch(name):
        # Debian's signed kernel images are built from `linux-signed-amd64 (6.1.112+1)`, a
        # wrapper of `linux 6.1.112-1`; Debian's advisories (DSA, DLA, OSV) name `linux` only.
        return "linux", version.replace("+", "-", 1)
    return name, version


# Debian's per-architecture wrappers (Ubuntu's `linux-signed-hwe-6.8` wraps another source).
_DEBIAN_SIGNED_KERNEL = re.compile(r"linux-signed-(?:amd64|arm64|i386)")


@functools.lru_cache(maxsize=1 << 14)
def parse_source(text: str | None) -> tuple[str, str]:
    """(name, version) of a source field as dpkg prints it: `inetutils (2:2.4-2+deb12u3)` ->
    (`inetutils`, `2:2.4-2+deb12u3`), `openssl` -> (`openssl`, ``), None -> (``, ``).

    Raises ValueError when the text is neither `name` nor `name (version)` (deb-control(5),
    `Source` field of a binary package's control data). rpm's source rpm file names
    (`openssl-3.0.7-27.el9.src.rpm`) are names.
    """
    if not text:
        return "", ""
    match = _SOURCE_FIELD.fullmatch(text)
    if match is None:
        msg = f"expected `name` or `name (version)` as dpkg prints a binary's source, got {text!r}"
        raise ValueError(msg)
    return match["name"], match["version"] or ""


# Debian policy §5.6.1/§5.6.12 spell source names [a-z0-9][a-z0-9+.-]+; rpm agents send the
# source rpm's file name (`%{SOURCERPM}`: `libfoo-1.0~rc1-1.el9.src.rpm`, `~` and `^` included),
# so a name is any run without blanks or parentheses, and only its `(version)` part is checked.
_SOURCE_FIELD = re.compile(r"(?P<name>[^\s()]+)(?: \((?P<version>[^()\s]+)\))?")


@dataclass(frozen=True, slots=True)
class Inventory:
    """What a device reported about itself; `release` is a release key such as `debian:12`
    (`patches.release_key(os.name, os.version)`), `os_build` a Windows build, `module_streams`
    the enabled module streams (`php:7.4`; None when the agent did not report them)."""

    os: OsFamily
    release: str = ""
    packages: tuple[InstalledPackage, ...] = ()
    os_build: str | None = None
    kernel: str | None = None
    module_streams: tuple[str, ...] | None = None
    windows: winproducts.WindowsOs | None = None  # Windows: what the device says it runs


@dataclass(frozen=True, slots=True)
class PackageUpdate:
    """One installed package a patch updates. `installed` and `fixed` are the source package's
    versions when `source` names it (the feed named the source, as Debian's does), else the
    binary's."""

    name: str
    arch: str
    installed: str
    fixed: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """A patch the device misses, and why: the first package (by name) and its versions.

    On Windows `package` is the product whose build line the device is on, `installed` the
    device's OS build and `fixed` the KB's build. `packages` lists every package the patch updates.
    """

    patch_id: str
    package: str
    installed: str
    fixed: str
    source: str = FEED
    packages: tuple[PackageUpdate, ...] = ()


# --- the index ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageFix:
    """A fixed package version of a patch, as indexed (arch "" when the feed names none);
    `ranges`, `affected_versions` and `module` as in `FixedPackage` (empty ranges: affected
    below `fixed`)."""

    patch_id: str
    fixed: str
    arch: str
    ranges: tuple[VersionRange, ...] = ()
    affected_versions: tuple[str, ...] = ()
    module: str | None = None

    def fix_for(self, scheme: Scheme, installed: str) -> str | None:
        """The fixed version `installed` needs, or None when it is not affected (or unfixed)."""
        if self.ranges or self.affected_versions:
            return affected_fix(scheme, installed, self.ranges, self.affected_versions)
        return self.fixed if _older(scheme, installed, self.fixed) else None


@dataclass(frozen=True, slots=True)
class BuildFix:
    """A KB's fixed build of one product, as indexed; `channel` from the remediation's SubType,
    `released` the KB's release day (alternatives share product and day)."""

    patch_id: str
    product: str
    build: tuple[int, ...]
    text: str
    channel: winproducts.Channel = winproducts.Channel.STANDARD
    released: date | None = None


class ApplicabilityIndex:
    """The catalogue, indexed for applicability. Build it once per catalogue change and share it,
    read-only, between every device evaluation."""

    __slots__ = ("_by_build_line", "_by_name", "_by_source", "_records", "_superseded_by")

    def __init__(self, records: Iterable[PatchRecord]) -> None:
        self._records: dict[str, PatchRecord] = {record.id: record for record in records}
        by_name: dict[tuple[str, str], list[PackageFix]] = {}
        by_source: dict[tuple[str, str], list[PackageFix]] = {}
        by_build_line: dict[tuple[int, int, int], list[BuildFix]] = {}
        superseded_by: dict[str, set[str]] = {}
        for record in self._records.values():
            _link(record, superseded_by)
            if not record.withdrawn:
                _add_packages(record, by_name, by_source)
                _add_builds(record, by_build_line)
        _link_package_versions(self._records.values(), superseded_by)
        # Frozen once built: the index is shared, read-only, between device evaluations.
        self._by_name = {key: tuple(fixes) for key, fixes in by_name.items()}
        self._by_source = {key: tuple(fixes) for key, fixes in by_source.items()}
        self._by_build_line = {key: tuple(fixes) for key, fixes in by_build_line.items()}
        self._superseded_by = {pid: frozenset(ids) for pid, ids in superseded_by.items()}

    @property
    def records(self) -> Mapping[str, PatchRecord]:
        """Every record by id (withdrawn ones included, for enrichment), read-only."""
        return MappingProxyType(self._records)

    def get(self, patch_id: str) -> PatchRecord | None:
        """The record of a patch id; KB numbers match with or without their `KB` prefix."""
        record = self._records.get(patch_id)
        if record is None and (kb := normalize_kb(patch_id)) is not None:
            record = self._records.get(kb)
        return record

    def superseded_by(self, patch_id: str) -> frozenset[str]:
        """The patches that replace `patch_id`, from either direction the vendors state it."""
        return self._superseded_by.get(patch_id, frozenset())

    def fixes_for(self, release: str, package: InstalledPackage) -> tuple[PackageFix, ...]:
        """Fixes of the release that name the package, by binary name or by source name."""
        by_source = self.source_fixes_for(release, package)
        by_name = self.binary_fixes_for(release, package)
        return by_name + by_source if by_source else by_name

    def binary_fixes_for(self, release: str, package: InstalledPackage) -> tuple[PackageFix, ...]:
        """Fixes of the release that name the binary package: compare the binary's version."""
        return self._by_name.get((release, package.name), ())

    def source_fixes_for(self, release: str, package: InstalledPackage) -> tuple[PackageFix, ...]:
        """Fixes of the release that name the package's source (Debian OSV, DSA, DLA): their
        versions are the source's, so compare `InstalledPackage.source_version`."""
        return self._by_source.get((release, package.source_name), ())

    def fixes_on_line(self, line: tuple[int, int, int]) -> tuple[BuildFix, ...]:
        """KB builds of one Windows build line."""
        return self._by_build_line.get(line, ())


def _add_packages(
    record: PatchRecord,
    by_name: dict[tuple[str, str], list[PackageFix]],
    by_source: dict[tuple[str, str], list[PackageFix]],
) -> None:
    for package in record.packages:
        fix = PackageFix(
            record.id,
            package.version,
            package.arch or "",
            package.ranges,
            package.affected_versions,
            package.module,
        )
        index = by_source if package.arch == SOURCE_ARCH else by_name
        index.setdefault((package.release, package.name), []).append(fix)


def _add_builds(
    record: PatchRecord, by_build_line: dict[tuple[int, int, int], list[BuildFix]]
) -> None:
    subtype = record.extra.get("subtype", "")
    builds = [(b.product, b.build, b.subtype or subtype) for b in record.builds]
    if not builds and record.fixed_build and record.os is OsFamily.WINDOWS:
        builds = [(record.product, record.fixed_build, subtype)]
    for product, text, kind in sorted(set(builds)):
        line = windows_build_line(text)
        if line is not None:
            channel = winproducts.channel_of(kind)
            build = parse_windows_build(text)
            fix = BuildFix(record.id, product, build, text, channel, record.released)
            by_build_line.setdefault(line, []).append(fix)


def _link(record: PatchRecord, superseded_by: dict[str, set[str]]) -> None:
    superseded_by.setdefault(record.id, set()).update(record.superseded_by)
    for old in record.supersedes:
        superseded_by.setdefault(old, set()).add(record.id)


def _link_package_versions(
    records: Iterable[PatchRecord], superseded_by: dict[str, set[str]]
) -> None:
    """Higher versions of a package supersede lower ones (package-version patches only)."""
    chains: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for record in records:
        if is_package_update(record) and not record.withdrawn:
            package = record.packages[0]
            key = (package.release, package.name, package.arch or "")
            chains.setdefault(key, []).append((package.version, record.id))
    for (release, _, _), versions in chains.items():
        scheme = scheme_for_release(release)
        if scheme is None or len(versions) < 2:
            continue
        for version, patch_id in versions:
            newer = {other for v, other in versions if _newer(scheme, v, version)}
            superseded_by.setdefault(patch_id, set()).update(newer)


def _newer(scheme: Scheme, candidate: str, than: str) -> bool:
    try:
        return compare(scheme, candidate, than) > 0
    except ValueError:
        return False


# --- detection ----------------------------------------------------------------------------


def detect_missing(index: ApplicabilityIndex, inventory: Inventory) -> tuple[Finding, ...]:
    """The patches of the catalogue the device misses, one finding per patch, sorted by id."""
    if inventory.os is OsFamily.WINDOWS:
        findings = _windows_findings(index, inventory.os_build, inventory.windows)
    else:
        findings = _package_findings(index, inventory)
    missing = findings.keys()
    kept = [f for pid, f in findings.items() if not index.superseded_by(pid) & missing]
    return tuple(sorted(kept, key=lambda finding: finding.patch_id))


def detect_pending_reboot(
    index: ApplicabilityIndex, inventory: Inventory, missing: Iterable[str]
) -> tuple[str, ...]:
    """The patches installed but not in effect until the device reboots: those the device
    would miss judged by its running kernel (`kernels.as_running`) and does not miss judged by
    its newest installed one (`missing`, from `detect_missing`). Sorted ids; () when the
    running kernel is the newest or cannot be judged. DESIGN.md 3.6: `installed-pending-reboot`."""
    scheme = scheme_for_release(inventory.release)
    if scheme is None or not inventory.kernel or inventory.os is OsFamily.WINDOWS:
        return ()
    running = kernels.as_running(scheme, inventory.kernel, inventory.packages)
    if len(running) == len(inventory.packages):
        return ()
    as_booted = detect_missing(index, dataclasses.replace(inventory, packages=running))
    already = set(missing)
    return tuple(f.patch_id for f in as_booted if f.patch_id not in already)


def _package_findings(index: ApplicabilityIndex, inventory: Inventory) -> dict[str, Finding]:
    scheme = scheme_for_release(inventory.release)
    if scheme is None:
        return {}
    updates: dict[str, dict[tuple[str, str], PackageUpdate]] = {}
    streams = _host_streams(inventory)
    for package in kernels.judged_packages(scheme, inventory.packages):
        by_name = index.binary_fixes_for(inventory.release, package)
        by_source = index.source_fixes_for(inventory.release, package)
        if by_name:
            by_name = _stream_fixes(scheme, by_name, package.full_version(scheme), streams)
            _collect(scheme, package, by_name, package.full_version(scheme), "", updates)
        if by_source:
            source_version = package.source_version(scheme)
            _collect(scheme, package, by_source, source_version, package.source_name, updates)
    return {pid: _finding(pid, packages.values()) for pid, packages in updates.items()}


def _host_streams(inventory: Inventory) -> dict[str, str] | None:
    if inventory.module_streams is None:
        return None
    return modules.enabled_by_module(inventory.module_streams)


def _stream_fixes(
    scheme: Scheme,
    fixes: tuple[PackageFix, ...],
    installed: str,
    streams: dict[str, str] | None,
) -> tuple[PackageFix, ...]:
    """The fixes that can update the installed build: of the host's module stream (module
    rule), and none of a patch that lists the installed build itself among its fixed builds
    (another stream or context of that patch may sort higher, but the host already has a fix)."""
    if scheme is not Scheme.RPM:
        return fixes
    has_build = {fix.patch_id for fix in fixes if _same(scheme, installed, fix.fixed)}
    return tuple(
        fix
        for fix in fixes
        if fix.patch_id not in has_build
        and modules.fix_applies(
            fix_stream=fix.module,
            fix_version=fix.fixed,
            installed_version=installed,
            host_streams=streams,
        )
    )


def _same(scheme: Scheme, installed: str, fixed: str) -> bool:
    try:
        return compare(scheme, installed, fixed) == 0
    except ValueError:
        return False


def _collect(
    scheme: Scheme,
    package: InstalledPackage,
    fixes: tuple[PackageFix, ...],
    installed: str,
    source: str,
    updates: dict[str, dict[tuple[str, str], PackageUpdate]],
) -> None:
    """Add the fixes `installed` needs; `source` names the source package when `installed` is
    the source's version (the fix names the source, not the binary)."""
    for fix in fixes:
        if not _arch_matches(fix.arch, package.arch):
            continue
        fixed = fix.fix_for(scheme, installed)
        if fixed is not None:
            found = updates.setdefault(fix.patch_id, {})
            key = (package.name, package.arch)
            if key not in found or _older(scheme, found[key].fixed, fixed):
                found[key] = PackageUpdate(package.name, package.arch, installed, fixed, source)


def fixed_in(index: ApplicabilityIndex, release: str, package: InstalledPackage) -> frozenset[str]:
    """The patches of `index` that name `package` (by binary name, or by its source) and whose
    fix its version already carries: the same matching as `detect_missing`, read the other way
    (a package at this version is not affected). Purely computational.

    `controller.core.advisories` asks it whether a package-version patch (`libssl3=3.0.16-1`,
    built from `openssl (3.0.16-1)`) carries an advisory's fix.
    """
    scheme = scheme_for_release(release)
    if scheme is None:
        return frozenset()
    found: set[str] = set()
    lookups = (
        (index.binary_fixes_for(release, package), package.full_version(scheme)),
        (index.source_fixes_for(release, package), package.source_version(scheme)),
    )
    for fixes, version in lookups:
        for fix in fixes:
            if _arch_matches(fix.arch, package.arch) and _carries(scheme, fix, version):
                found.add(fix.patch_id)
    return frozenset(found)


def _carries(scheme: Scheme, fix: PackageFix, version: str) -> bool:
    try:
        compare(scheme, version, fix.fixed)  # raises for a version that cannot be parsed
    except ValueError:
        return False  # an unparseable version cannot be judged; `fix_for` would not say so
    return fix.fix_for(scheme, version) is None


def _finding(patch_id: str, updates: Iterable[PackageUpdate]) -> Finding:
    ordered = tuple(sorted(updates, key=lambda u: (u.name, u.arch)))
    first = ordered[0]
    return Finding(patch_id, first.name, first.installed, first.fixed, FEED, ordered)


def _arch_matches(fixed_arch: str, installed_arch: str) -> bool:
    return fixed_arch in _ANY_ARCH or installed_arch in _ANY_ARCH or fixed_arch == installed_arch


def _older(scheme: Scheme, installed: str, fixed: str) -> bool:
    try:
        return compare(scheme, installed, fixed) < 0
    except ValueError:
        return False  # an unparseable version cannot be judged; do not invent a finding


def _windows_findings(
    index: ApplicabilityIndex, os_build: str | None, device: winproducts.WindowsOs | None
) -> dict[str, Finding]:
    line = windows_build_line(os_build) if os_build else None
    if os_build is None or line is None:
        return {}
    build = parse_windows_build(os_build)
    findings: dict[str, Finding] = {}
    for fix in _device_fixes(index.fixes_on_line(line), device):
        if build < fix.build and fix.patch_id not in findings:
            findings[fix.patch_id] = Finding(fix.patch_id, fix.product, os_build, fix.text)
    return findings


def _device_fixes(
    fixes: tuple[BuildFix, ...], device: winproducts.WindowsOs | None
) -> list[BuildFix]:
    """The fixes of the device's own product (all of the line when it does not say, or when
    none names its product), in the channel it takes for each product and day."""
    product = winproducts.device_product(device) if device is not None else None
    if product is not None:
        own = tuple(f for f in fixes if winproducts.product_matches(f.product, product))
        fixes = own or fixes
    order = winproducts.preferred_channels(
        hotpatch_enrolled=device is not None and device.hotpatch_enrolled
    )
    alternatives: dict[tuple[str, date | None], set[winproducts.Channel]] = {}
    for fix in fixes:
        alternatives.setdefault((fix.product, fix.released), set()).add(fix.channel)
    taken = {
        key: next((channel for channel in order if channel in channels), None)
        for key, channels in alternatives.items()
    }
    return [fix for fix in fixes if taken[(fix.product, fix.released)] is fix.channel]


# --- enrichment of agent-reported patches -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportedPatch:
    """A missing patch as an agent reports it: only `id` is required (DESIGN §4)."""

    id: str
    title: str | None = None
    classification: Classification | None = None
    severity: Severity | None = None
    kb: str | None = None
    cves: tuple[str, ...] = ()
    rating: float | None = None
    superseded_by: tuple[str, ...] = ()
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class EnrichedPatch:
    """A reported patch completed from the catalogue; `applicable` is False when superseded or
    withdrawn, with the reason."""

    id: str
    title: str
    classification: Classification
    severity: Severity
    cves: tuple[str, ...]
    rating: float | None
    superseded_by: tuple[str, ...]
    kb: str | None
    size_bytes: int | None
    in_catalogue: bool
    applicable: bool
    reason: str = ""
    source: str = "agent"


def enrich(
    missing_reported: Iterable[ReportedPatch], catalogue: ApplicabilityIndex
) -> tuple[EnrichedPatch, ...]:
    """The reported patches with the catalogue's metadata, in report order.

    The catalogue's values win where it has them, so one patch looks the same on every device;
    the agent's fill what the catalogue lacks (an unknown patch keeps all of the agent's). A patch
    is not applicable when another patch of the same report supersedes it, or when the vendor
    withdrew it.
    """
    reported = list(missing_reported)
    resolved = [(patch, _lookup(catalogue, patch)) for patch in reported]
    ids = {record.id if record else patch.id for patch, record in resolved}
    return tuple(_enriched(patch, record, catalogue, ids) for patch, record in resolved)


def _lookup(catalogue: ApplicabilityIndex, patch: ReportedPatch) -> PatchRecord | None:
    record = catalogue.get(patch.id)
    if record is None and patch.kb:
        record = catalogue.get(patch.kb)
    return record


def _enriched(
    patch: ReportedPatch,
    record: PatchRecord | None,
    catalogue: ApplicabilityIndex,
    reported_ids: set[str],
) -> EnrichedPatch:
    patch_id = record.id if record else patch.id
    superseded_by = tuple(sorted(catalogue.superseded_by(patch_id) | set(patch.superseded_by)))
    successors = sorted(set(superseded_by) & reported_ids - {patch_id})
    reason = ""
    if record is not None and record.withdrawn:
        reason = "withdrawn by the vendor"
    elif successors:
        reason = f"superseded by {', '.join(successors)}, also missing"
    return EnrichedPatch(
        id=patch_id,
        title=(record.title if record else "") or patch.title or "",
        classification=_classification(record, patch),
        severity=_severity(record, patch),
        cves=(record.cves if record else ()) or patch.cves,
        rating=record.rating if record and record.rating is not None else patch.rating,
        superseded_by=superseded_by,
        kb=patch.kb or normalize_kb(patch_id),
        size_bytes=patch.size_bytes,
        in_catalogue=record is not None,
        applicable=not reason,
        reason=reason,
    )


def _classification(record: PatchRecord | None, patch: ReportedPatch) -> Classification:
    if record is not None and record.classification is not Classification.OTHER:
        return record.classification
    return patch.classification or Classification.OTHER


def _severity(record: PatchRecord | None, patch: ReportedPatch) -> Severity:
    if record is not None and record.severity is not Severity.UNSPECIFIED:
        return record.severity
    return patch.severity or Severity.UNSPECIFIED
