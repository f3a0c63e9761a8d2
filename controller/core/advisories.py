"""Advisories that group package updates on Debian and Ubuntu (DSA, DLA, USN, Debian OSV).

Purely computational, no side effects.

apt installs packages, not advisories: an agent takes `name=version` pairs (DESIGN §1), and the
catalogue holds one package-version patch per binary version (`libssl3=3.0.15-1~deb12u1`, from
a `Packages` index or an agent's scan). An operator approves what Debian and Ubuntu publish:
`DSA-6010-1`, `DLA-4401-1`, `USN-7123-1`. This module joins the two:

- An advisory *covers* a package-version patch of the same release when that package version
  carries the advisory's fix: the binary is built from the advisory's source package at a
  version at or above the fixed one (DSA, DLA and Debian OSV name source packages; the source
  version is the `Packages` stanza's `Source: name (version)`, else the binary's own), or it is
  the advisory's binary at or above the fixed version (Ubuntu USN `binaries`). The matching is
  `applicability.fixed_in`, the one server-side applicability uses.
- On a device, an advisory that is approved and *missing* approves the device's missing package
  patches it covers ("Approval acme/x via DSA-6010-1"). An approved advisory the device does not
  miss approves nothing there: covering "every later version" would otherwise let an old
  approval install tomorrow's unrelated update.
- Install jobs carry the package pairs, never a Debian or Ubuntu advisory id (apt cannot install
  one), and one version per package: the newest the device's scan and the catalogue offer
  (`job_patches`). Advisories of other families (RHSA, ALSA: dnf installs them by id) and KBs
  pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from controller.core.applicability import ApplicabilityIndex, InstalledPackage, fixed_in
from controller.core.patches import PatchRecord, is_package_update, package_update_id
from controller.core.versions import Scheme, compare, scheme_for_release

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from controller.core.decisions import Decision


def is_grouping(record: PatchRecord) -> bool:
    """Whether the record is an advisory over Debian or Ubuntu packages (not one package
    version): DSA, DLA, USN, Debian OSV. Its id names packages apt installs as pairs."""
    return (
        bool(record.packages)
        and not _is_package_version(record)
        and all(scheme_for_release(p.release) is Scheme.DPKG for p in record.packages)
    )


def _is_package_version(record: PatchRecord) -> bool:
    # One package version, possibly read from several architectures' indexes (amd64, i386)
    # and merged into one record with a package per architecture.
    return is_package_update(record) or (
        bool(record.packages)
        and all(
            record.id == package_update_id(p.name, p.version)
            and p.release == record.packages[0].release
            for p in record.packages
        )
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A package-version patch as a device can install it: `name=version` of a release, built
    from `source_name` at `source_version`."""

    patch_id: str
    release: str
    name: str
    version: str
    arch: str = ""
    source_name: str = ""
    source_version: str = ""

    def as_installed(self) -> InstalledPackage:
        """The package as if installed at this version (for `applicability.fixed_in`)."""
        source = self.source_name or self.name
        if self.source_version and self.source_version != self.version:
            source = f"{source} ({self.source_version})"
        return InstalledPackage(self.name, self.version, self.arch, source=source)


def candidate(record: PatchRecord) -> Candidate | None:
    """The candidate of a package-version patch of a Debian or Ubuntu release, else None.

    A version published for several architectures matches any of them (arch "")."""
    if not _is_package_version(record):
        return None
    package = record.packages[0]
    arches = {p.arch or "" for p in record.packages}
    if scheme_for_release(package.release) is not Scheme.DPKG:
        return None
    return Candidate(
        patch_id=record.id,
        release=package.release,
        name=package.name,
        version=package.version,
        arch=arches.pop() if len(arches) == 1 else "",
        source_name=package.source_name or package.name,
        source_version=package.source_version or package.version,
    )


class AdvisoryIndex:
    """The grouping advisories of a catalogue, indexed once and shared read-only by a plan."""

    __slots__ = ("_index", "_records")

    def __init__(self, records: Iterable[PatchRecord]) -> None:
        self._records = {r.id: r for r in records if not r.withdrawn and is_grouping(r)}
        self._index = ApplicabilityIndex(self._records.values())

    def __bool__(self) -> bool:
        return bool(self._records)

    def __contains__(self, patch_id: object) -> bool:
        return patch_id in self._records

    def covering(self, found: Candidate) -> frozenset[str]:
        """The advisories whose fix the candidate's package version carries."""
        return fixed_in(self._index, found.release, found.as_installed())


@dataclass(frozen=True, slots=True)
class Grouping:
    """What an approved advisory does on one device.

    `approved`: the decisions that change: package patches approved through an advisory (the
    others stay as `decisions.decide` took them); `members`: advisory id -> the pairs an install
    brings for it (installable, newest version per package, sorted).
    """

    approved: Mapping[str, Decision]
    members: Mapping[str, tuple[str, ...]]

    def decision(self, patch_id: str, decisions: Mapping[str, Decision]) -> Decision:
        """The device's decision for a patch: grouped when an advisory approves it."""
        found = self.approved.get(patch_id)
        return found if found is not None else decisions[patch_id]


NOTHING = Grouping({}, {})


def group(
    missing: Sequence[str],
    decisions: Mapping[str, Decision],
    *,
    index: AdvisoryIndex,
    record: Callable[[str], PatchRecord],
) -> Grouping:
    """Apply the device's approved, missing advisories to its missing package patches.

    `decisions` maps every id of `missing` to its policy decision (`decisions.decide`);
    `record` returns a catalogue record (a bare one for an id only an agent knows about).
    """
    approved = [p for p in missing if p in index and decisions[p].approved]
    if not approved:
        return NOTHING
    reasons: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {advisory: [] for advisory in approved}
    for patch_id in missing:
        found = candidate(record(patch_id))
        if found is None:
            continue
        for advisory in sorted(index.covering(found).intersection(approved)):
            members[advisory].append(patch_id)
            reasons.setdefault(patch_id, []).extend(
                f"{reason} via {advisory}" for reason in decisions[advisory].approved_by
            )
    grouped = {
        patch_id: replace(
            decisions[patch_id], approved_by=(*decisions[patch_id].approved_by, *extra)
        )
        for patch_id, extra in reasons.items()
    }
    # what each advisory brings: its installable pairs, the newest version of each package
    brought = {
        advisory: tuple(job_patches((p for p in ids if grouped[p].installable), record=record))
        for advisory, ids in members.items()
    }
    return Grouping(grouped, brought)


def job_patches(installable: Iterable[str], *, record: Callable[[str], PatchRecord]) -> list[str]:
    """The ids an install job carries, sorted: Debian and Ubuntu advisories dropped (their
    packages are installable in their place, see `group`), and of several versions of one
    package (release, name) only the newest."""
    return JobPatches(record)(installable)


class JobPatches:
    """`job_patches` that remembers what each id is: a plan asks about the same ids for many
    devices, and most are neither advisories nor package versions (KBs, RPM advisories)."""

    __slots__ = ("_kinds", "_record")

    def __init__(self, record: Callable[[str], PatchRecord]) -> None:
        self._record = record
        self._kinds: dict[str, Candidate | bool] = {}  # True: keep as is, False: drop

    def __call__(self, installable: Iterable[str]) -> list[str]:
        newest: dict[tuple[str, str], Candidate] = {}
        kept: list[str] = []
        for patch_id in installable:
            kind = self._kinds.get(patch_id)
            if kind is None:
                kind = self._kinds[patch_id] = self._kind(patch_id)
            if kind is True:
                kept.append(patch_id)
            elif isinstance(kind, Candidate):
                key = (kind.release, kind.name)  # a pair names no arch: apt picks the host's
                other = newest.get(key)
                if other is None or _newer(kind.version, other.version):
                    newest[key] = kind
        kept.extend(package.patch_id for package in newest.values())
        return sorted(kept)

    def _kind(self, patch_id: str) -> Candidate | bool:
        found = self._record(patch_id)
        if is_grouping(found):
            return False
        return candidate(found) or True


def _newer(version: str, than: str) -> bool:
    try:
        return compare(Scheme.DPKG, version, than) > 0
    except ValueError:
        return False
