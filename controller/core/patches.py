"""The patch catalogue's record: one installable update, as published by a patch feed.

Purely declarative values shared by the feed importers, the store and the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from controller.kinds.common import Classification, OsFamily, Severity


@dataclass(frozen=True, slots=True)
class FixedPackage:
    """A package version that carries a patch's fix, for server-side applicability.

    `release` names the OS release the package belongs to in `family:version` form
    (`debian:12`, `ubuntu:24.04`, `almalinux:9`, `rhel:8`); `version` is the fixed version
    in the ecosystem's own syntax (`1:3.0.15-1~deb12u1`, `0:1.13.0-9.el8_9.1`).
    """

    name: str
    version: str
    release: str
    arch: str | None = None
    source_name: str | None = None


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
            for p in record.packages
        ],
        "fixed_build": record.fixed_build,
        "url": record.url,
        "withdrawn": record.withdrawn,
        "source": record.source,
        "extra": dict(record.extra),
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
        reboot_required=bool(get("reboot_required")) if get("reboot_required") is not None else None,
        packages=tuple(
            FixedPackage(
                name=str(p["name"]),
                version=str(p["version"]),
                release=str(p["release"]),
                arch=p.get("arch"),
                source_name=p.get("source_name"),
            )
            for p in _dicts(get("packages"))
        ),
        fixed_build=str(get("fixed_build")) if get("fixed_build") else None,
        url=str(get("url")) if get("url") else None,
        withdrawn=bool(get("withdrawn")),
        source=str(get("source") or ""),
        extra={str(k): str(v) for k, v in dict(get("extra") or {}).items()},  # type: ignore[call-overload]
    )


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _dicts(value: object) -> list[dict[str, str | None]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list | tuple) else []
