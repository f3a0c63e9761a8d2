"""The patch catalogue's record: one installable update, as published by a patch feed.

Purely declarative values shared by the feed importers, the store and the planner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable


class EventKind(StrEnum):
    """The events of an OSV range (OSV schema, `affected[].ranges[].events[]`)."""

    INTRODUCED = "introduced"  # affected from this version on (`0`: from the first version)
    FIXED = "fixed"  # not affected from this version on
    LAST_AFFECTED = "last_affected"  # the last affected version (later ones are not)
    LIMIT = "limit"  # no version at or above it is in the range


@dataclass(frozen=True, slots=True)
class RangeEvent:
    """One event of a version range: `RangeEvent(EventKind.FIXED, "2.0-1")`."""

    kind: EventKind
    version: str


# One OSV range: its events in the feed's order (evaluation sorts them, see versions.py).
VersionRange = tuple[RangeEvent, ...]


@dataclass(frozen=True, slots=True)
class FixedPackage:
    """A package version that carries a patch's fix, for server-side applicability.

    `release` names the OS release the package belongs to in `family:version` form
    (`debian:12`, `ubuntu:24.04`, `almalinux:9`, `rhel:8`); `version` is the fixed version
    in the ecosystem's own syntax (`1:3.0.15-1~deb12u1`, `0:1.13.0-9.el8_9.1`).

    `arch` is the package architecture when the feed names it (`amd64`, `x86_64`, `all`,
    `noarch`). The arch `source` marks a *source* package (Debian OSV names only those): hosts
    then match it through the source name of their installed binaries. `release_key` builds the
    `release` value from an OS name and version.

    Without `ranges` and `affected_versions`, every version below `version` is affected (what
    errata, CSAF and simple OSV records say). With them (OSV records whose ranges have several
    intervals, an `introduced` above 0, `last_affected` or `limit`), a version is affected when
    it is in one of the ranges or in `affected_versions`, and `version` is the newest fix only:
    `versions.affected_fix` gives the fix that applies to an installed version.

    `source_version` is the version of the source package a binary was built from, when the
    feed says it differs from `version` (a `Packages` stanza's `Source: inetutils
    (2:2.4-2+deb12u3)`); None means the same version. Advisories that name source packages
    (DSA, DLA) cover a binary through it (`controller.core.advisories`).

    `module` is the module stream the build belongs to (`php:7.4`, RHEL-family modularity),
    when the feed says it: such a fix only updates hosts on that stream (`modules.fix_applies`).
    """

    name: str
    version: str
    release: str
    arch: str | None = None
    source_name: str | None = None
    ranges: tuple[VersionRange, ...] = ()
    affected_versions: tuple[str, ...] = ()
    source_version: str | None = None  # the source's version when it differs (Packages indexes)
    module: str | None = None


SOURCE_ARCH = "source"  # FixedPackage.arch of a source package (Debian's own spelling)


@dataclass(frozen=True, slots=True)
class ProductBuild:
    """A product a Windows KB applies to and the build of that product that contains the KB.

    Microsoft publishes one fixed build per product (`Windows 10 Version 22H2` gets 10.0.19045.3930
    from the same KB that gives 21H2 10.0.19044.3930), so applicability compares a device's OS
    build against the build of its own product line.
    """

    product: str
    build: str
    product_id: str = ""
    subtype: str = ""  # the remediation's SubType: Security Update, AzureHotpatch, Monthly Rollup


@dataclass(frozen=True, slots=True)
class PatchRecord:
    """One patch id in the catalogue. Fields a feed does not know stay at their defaults."""

    id: str
    title: str = ""
    vendor: str = ""
    product: str = ""
    os: OsFamily | None = None
    os_versions: tuple[str, ...] = ()
    classification: Classification = Classification.OTHER
    severity: Severity = Severity.UNSPECIFIED
    released: date | None = None
    modified: datetime | None = None
    rating: float | None = None
    cves: tuple[str, ...] = ()
    superseded_by: tuple[str, ...] = ()
    supersedes: tuple[str, ...] = ()
    reboot_required: bool | None = None
    packages: tuple[FixedPackage, ...] = ()
    fixed_build: str | None = None  # Windows: the OS build that contains the KB (10.0.17763.5329)
    url: str | None = None
    withdrawn: bool = False
    source: str = ""  # the feed the record came from (format and origin), for explain
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    builds: tuple[ProductBuild, ...] = ()  # Windows: the fixed build per product


def to_dict(record: PatchRecord) -> dict[str, object]:
    """A JSON-ready dict of the record (camelCase-free, field names as in the dataclass)."""
    return {
        "id": record.id,
        "title": record.title,
        "vendor": record.vendor,
        "product": record.product,
        "os": record.os.value if record.os else None,
        "os_versions": list(record.os_versions),
        "classification": record.classification.value,
        "severity": record.severity.value,
        "released": record.released.isoformat() if record.released else None,
        "modified": record.modified.isoformat() if record.modified else None,
        "rating": record.rating,
        "cves": list(record.cves),
        "superseded_by": list(record.superseded_by),
        "supersedes": list(record.supersedes),
        "reboot_required": record.reboot_required,
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "release": p.release,
                "arch": p.arch,
                "source_name": p.source_name,
            }
            | _range_fields(p)
            for p in record.packages
        ],
        "fixed_build": record.fixed_build,
        "url": record.url,
        "withdrawn": record.withdrawn,
        "source": record.source,
        "extra": dict(record.extra),
        "builds": [
            {"product": b.product, "build": b.build, "product_id": b.product_id}
            | ({"subtype": b.subtype} if b.subtype else {})
            for b in record.builds
        ],
    }


def from_dict(data: dict[str, object]) -> PatchRecord:
    """The inverse of `to_dict`."""
    get = data.get
    os_value = get("os")
    released = get("released")
    modified = get("modified")
    return PatchRecord(
        id=str(data["id"]),
        title=str(get("title") or ""),
        vendor=str(get("vendor") or ""),
        product=str(get("product") or ""),
        os=OsFamily(str(os_value)) if os_value else None,
        os_versions=tuple(_strings(get("os_versions"))),
        classification=Classification(str(get("classification") or "other")),
        severity=Severity(str(get("severity") or "unspecified")),
        released=date.fromisoformat(str(released)) if released else None,
        modified=datetime.fromisoformat(str(modified)) if modified else None,
        rating=float(str(get("rating"))) if get("rating") is not None else None,
        cves=tuple(_strings(get("cves"))),
        superseded_by=tuple(_strings(get("superseded_by"))),
        supersedes=tuple(_strings(get("supersedes"))),
        reboot_required=(
            bool(get("reboot_required")) if get("reboot_required") is not None else None
        ),
        packages=tuple(
            FixedPackage(
                name=str(p["name"]),
                version=str(p["version"]),
                release=str(p["release"]),
                arch=p.get("arch"),
                source_name=p.get("source_name"),
                ranges=_ranges(p.get("ranges")),
                affected_versions=tuple(_strings(p.get("affected_versions"))),
                source_version=p.get("source_version"),
                module=p.get("module") or None,
            )
            for p in _dicts(get("packages"))
        ),
        fixed_build=str(get("fixed_build")) if get("fixed_build") else None,
        url=str(get("url")) if get("url") else None,
        withdrawn=bool(get("withdrawn")),
        source=str(get("source") or ""),
        extra={str(k): str(v) for k, v in dict(get("extra") or {}).items()},  # type: ignore[call-overload]
        builds=tuple(
            ProductBuild(
                product=str(b["product"]),
                build=str(b["build"]),
                product_id=str(b.get("product_id") or ""),
                subtype=str(b.get("subtype") or ""),
            )
            for b in _dicts(get("builds"))
        ),
    )


def _range_fields(package: FixedPackage) -> dict[str, object]:
    # Written only when present: records without ranges keep their stored form (and digest).
    fields: dict[str, object] = {}
    if package.ranges:
        fields["ranges"] = [
            [{event.kind.value: event.version} for event in events] for events in package.ranges
        ]
    if package.affected_versions:
        fields["affected_versions"] = list(package.affected_versions)
    if package.source_version:
        fields["source_version"] = package.source_version
    if package.module:
        fields["module"] = package.module
    return fields


def _ranges(value: object) -> tuple[VersionRange, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        tuple(
            RangeEvent(EventKind(str(kind)), str(version))
            for event in events
            if isinstance(event, dict)
            for kind, version in event.items()
        )
        for events in value
        if isinstance(events, list)
    )


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _dicts(value: object) -> list[dict[str, str | None]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list | tuple) else []


# --- identities shared by the importers and applicability -----------------------------------

# OS names as feeds and agents spell them -> the os-release ID used in release keys.
_DISTRO_IDS: dict[str, str] = {
    "debian": "debian",
    "debian gnu/linux": "debian",
    "ubuntu": "ubuntu",
    "rhel": "rhel",
    "red hat": "rhel",
    "redhat": "rhel",
    "red hat enterprise linux": "rhel",
    "almalinux": "almalinux",
    "alma": "almalinux",
    "rocky": "rocky",
    "rocky linux": "rocky",
    "centos": "centos",
    "centos linux": "centos",
    "centos stream": "centos",
    "ol": "ol",
    "oracle linux": "ol",
    "oracle linux server": "ol",
    "fedora": "fedora",
    "fedora core": "fedora",
    "fedora linux": "fedora",
    "amzn": "amzn",
    "amazon": "amzn",
    "amazon linux": "amzn",
    "alpine": "alpine",
    "alpine linux": "alpine",
}
# Releases of these distributions are named by major.minor (Ubuntu 24.04, Alpine 3.18, Amazon
# Linux 2023 has no minor); every other one by its major version: a RHEL 9.4 host takes the
# errata of "9", and Debian 12.11 is a point release of "12".
_MINOR_RELEASES = frozenset({"ubuntu", "alpine"})
_VERSION_RE = re.compile(r"v?(\d+)(?:\.(\d+))?")


def distro_id(name: str) -> str:
    """The os-release ID for an OS name (`Rocky Linux` -> `rocky`); unknown names are slugged."""
    key = " ".join(name.strip().lower().split())
    return _DISTRO_IDS.get(key, key.replace(" ", "-"))


def release_key(distro: str, version: str) -> str:
    """The `family:version` key of an OS release: `debian:12`, `ubuntu:24.04`, `almalinux:9`.

    Purely computational. `distro` may be an os-release ID or a display name (`Red Hat
    Enterprise Linux`); `version` may carry a point release (`12.11`, `9.4`, `24.04.1 LTS`).
    """
    family = distro_id(distro)
    match = _VERSION_RE.search(version)
    if match is None:
        return f"{family}:{version.strip().lower()}" if version.strip() else family
    major, minor = match.group(1), match.group(2)
    if family in _MINOR_RELEASES and minor is not None:
        return f"{family}:{major}.{minor}"
    return f"{family}:{major}"


def release_family(release: str) -> str:
    """`debian` for `debian:12`."""
    return release.split(":", 1)[0]


def package_update_id(name: str, version: str) -> str:
    """The id of a package-version patch (DESIGN §1): `openssl=3.0.15-1~deb12u1`."""
    return f"{name}={version}"


def is_package_update(record: PatchRecord) -> bool:
    """Whether the record is one package version, not an advisory (see `package_update_id`)."""
    return len(record.packages) == 1 and record.id == package_update_id(
        record.packages[0].name, record.packages[0].version
    )


_KB_RE = re.compile(r"^(?:KB)?(\d{6,8})$", re.IGNORECASE)


def normalize_kb(text: str) -> str | None:
    """`KB5034127` for `5034127`, `kb5034127` or `KB5034127`; None when it is not a KB number."""
    match = _KB_RE.match(text.strip())
    return f"KB{match.group(1)}" if match else None


def link_supersedence(records: Iterable[PatchRecord]) -> tuple[PatchRecord, ...]:
    """The records with `superseded_by` completed from every other record's `supersedes`.

    Purely computational and idempotent: vendors publish one direction only (Microsoft names
    the KBs a KB replaces), and applicability needs the other.
    """
    records = tuple(records)
    superseders: dict[str, set[str]] = {}
    for record in records:
        for old in record.supersedes:
            superseders.setdefault(old, set()).add(record.id)
    linked = []
    for record in records:
        extra = superseders.get(record.id, set()) - set(record.superseded_by)
        if extra:
            record = replace(record, superseded_by=tuple(sorted({*record.superseded_by, *extra})))  # noqa: PLW2901 - the loop builds a new tuple
        linked.append(record)
    return tuple(linked)
