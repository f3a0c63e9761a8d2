"""Red Hat CSAF 2.0 advisories (`RHSA-2023:7207.json`): one document is one record.

Mapping: `document.tracking.id`, `document.title`, `aggregate_severity` (else the highest
per-CVE impact), initial and current release dates, CVEs from `vulnerabilities[].cve`, rating from
the CVSS scores (the vendor's `baseScore`, else the vector). Fixed packages are the product ids of
`product_status.fixed` resolved through `product_tree.relationships` (package *component of*
platform): the platform's CPE names the release (`cpe:/o:redhat:enterprise_linux:8::baseos`
-> `rhel:8`, layered products `…::el9` -> `rhel:9`), the package's NEVRA (from its product id, or
its purl when the id is not a NEVRA) the name, fixed EVR and arch. Container images and source RPMs
are not host packages and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.core.patches import FixedPackage, PatchRecord
from controller.feeds.common import (
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
    parse_date,
    parse_datetime,
    pointer,
    read_bytes,
    require_object,
    severity_word,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_FIXED_STATUSES = ("fixed", "first_fixed")
# CSAF restart categories that mean the machine restarts; a service restart is not a reboot.
_REBOOTS = frozenset({"machine", "system", "zone"})
_NO_REBOOTS = frozenset(
    {"none", "service", "application", "vulnerable_component", "parent", "child", "connected"}
)


def accepts(path: Path) -> bool:
    """CSAF documents are JSON files."""
    return path.suffix.lower() == ".json"


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:  # noqa: ARG001 - CPEs name the release
    """The record of one CSAF document, or the error that prevented it."""
    try:
        document = require_object(load_json(read_bytes(path)), "")
        record = parse_document(document, source=f"csaf:{name}")
    except RecordError as exc:
        return FeedResult(errors=(FeedError(name, exc.position, exc.message),))
    return FeedResult(records=(record,))


def parse_document(doc: dict[str, Any], *, source: str) -> PatchRecord:
    """A patch record from one CSAF document (purely computational)."""
    header = get_dict(doc, "document", "")
    tracking = get_dict(header, "tracking", "/document")
    advisory_id = get_str(tracking, "id", "/document/tracking", required=True)
    vulnerabilities = [
        require_object(raw, pointer("/vulnerabilities", index))
        for index, raw in enumerate(get_list(doc, "vulnerabilities", ""))
    ]
    tree = _ProductTree(get_dict(doc, "product_tree", ""))
    packages, platforms = _fixed_packages(vulnerabilities, tree)
    rating = max_rating(_scores(vulnerabilities))
    aggregate = get_str(get_dict(header, "aggregate_severity", "/document"), "text", "/document")
    default_class = (
        Classification.SECURITY
        if get_str(header, "category", "/document") == "csaf_security_advisory"
        else Classification.OTHER
    )
    return PatchRecord(
        id=advisory_id,
        title=get_str(header, "title", "/document"),
        vendor=_vendor(header),
        product=join_names(platforms) or join_names(p.name for p in packages),
        os=OsFamily.LINUX,
        os_versions=tuple(sorted({p.release for p in packages})),
        classification=classification_from_id(advisory_id, default_class),
        severity=severity_word(aggregate) or _impact(vulnerabilities),
        released=parse_date(get_str(tracking, "initial_release_date", "/document/tracking")),
        modified=parse_datetime(get_str(tracking, "current_release_date", "/document/tracking")),
        rating=rating,
        cves=cve_ids(get_str(v, "cve", "") for v in vulnerabilities),
        reboot_required=_reboot(vulnerabilities),
        packages=tuple(sorted(packages, key=lambda p: (p.release, p.name, p.arch or ""))),
        url=_self_url(header),
        source=source,
    )


# --- product tree ---------------------------------------------------------------------------

_NEVRA = re.compile(
    r"^(?P<name>[^\s/:]+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:\s]+)-(?P<release>[^-:\s]+)"
    r"\.(?P<arch>[a-z0-9_]+)$"
)
_HOST_ARCHES = frozenset(
    {"x86_64", "i686", "i386", "aarch64", "ppc64le", "ppc64", "s390x", "s390", "noarch", "armv7hl"}
)
_CPE_EL = re.compile(r"(?:^|[^a-z])el(\d+)")
_CPE_RHEL = re.compile(r"^cpe:/[ao]:redhat:(?:enterprise_linux|rhel_[a-z0-9_]+):(\d+)")
_DIST_TAG = re.compile(r"\.el(\d+)")


@dataclass(frozen=True, slots=True)
class _Product:
    name: str
    cpe: str
    purl: str


class _ProductTree:
    """Product ids of a CSAF product tree, and how packages relate to platforms."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.products: dict[str, _Product] = {}
        for branch in _walk(get_list(tree, "branches", "/product_tree")):
            product = branch.get("product")
            if isinstance(product, dict) and isinstance(product.get("product_id"), str):
                helper = product.get("product_identification_helper") or {}
                self.products[product["product_id"]] = _Product(
                    name=str(product.get("name", "")),
                    cpe=str(helper.get("cpe", "")) if isinstance(helper, dict) else "",
                    purl=str(helper.get("purl", "")) if isinstance(helper, dict) else "",
                )
        self.relationships: dict[str, tuple[str, str]] = {}
        for index, raw in enumerate(get_list(tree, "relationships", "/product_tree")):
            at = pointer("/product_tree/relationships", index)
            relation = require_object(raw, at)
            full = get_dict(relation, "full_product_name", at)
            product_id = get_str(full, "product_id", pointer(at, "full_product_name"))
            if product_id:
                self.relationships[product_id] = (
                    get_str(relation, "product_reference", at),
                    get_str(relation, "relates_to_product_reference", at),
                )

    def resolve(self, product_id: str) -> tuple[FixedPackage, str] | None:
        """The host package a fixed product id stands for and its platform's name, or None for
        container images, source RPMs and ids the tree does not explain."""
        package_ref, platform_ref = self.relationships.get(product_id, (product_id, ""))
        nevra = _parse_nevra(package_ref, self.products.get(package_ref))
        if nevra is None:
            return None
        name, evr, arch = nevra
        release = self._release(platform_ref, evr)
        if release is None:
            return None
        platform = self.products.get(platform_ref)
        return FixedPackage(name, evr, release, arch), platform.name if platform else ""

    def _release(self, platform_ref: str, evr: str) -> str | None:
        cpe = self.products[platform_ref].cpe.lower() if platform_ref in self.products else ""
        rhel = _CPE_RHEL.match(cpe)
        if rhel:
            return f"rhel:{rhel.group(1)}"
        el = _CPE_EL.search(cpe.rsplit(":", 1)[-1]) or _DIST_TAG.search(evr)
        return f"rhel:{el.group(1)}" if el else None


def _walk(branches: list[Any]) -> Iterator[dict[str, Any]]:
    for branch in branches:
        if isinstance(branch, dict):
            yield branch
            children = branch.get("branches")
            if isinstance(children, list):
                yield from _walk(children)


def _parse_nevra(product_id: str, product: _Product | None) -> tuple[str, str, str] | None:
    """(name, epoch:version-release, arch) of an RPM product id: `c-ares-0:1.13.0-9.el8.x86_64`."""
    if product is not None and product.purl and not product.purl.startswith("pkg:rpm/"):
        return None  # a container image or another non-RPM artefact
    match = _NEVRA.match(product_id)
    if match is None or match.group("arch") not in _HOST_ARCHES:
        return None
    epoch = match.group("epoch") or "0"
    evr = f"{epoch}:{match.group('version')}-{match.group('release')}"
    return match.group("name"), evr, match.group("arch")


def _fixed_packages(
    vulnerabilities: list[dict[str, Any]], tree: _ProductTree
) -> tuple[list[FixedPackage], set[str]]:
    """The distinct fixed host packages, and the names of the platforms they ship on."""
    found: dict[tuple[str, str, str | None, str], FixedPackage] = {}
    platforms: set[str] = set()
    for index, vulnerability in enumerate(vulnerabilities):
        at = pointer("/vulnerabilities", index)
        status = get_dict(vulnerability, "product_status", at)
        for key in _FIXED_STATUSES:
            for product_id in get_list(status, key, pointer(at, "product_status")):
                resolved = tree.resolve(str(product_id))
                if resolved is not None:
                    package, platform = resolved
                    found[(package.release, package.name, package.arch, package.version)] = package
                    platforms.add(platform)
    return list(found.values()), platforms


# --- severity, rating, reboot -----------------------------------------------------------------


def _impact(vulnerabilities: list[dict[str, Any]]) -> Severity:
    words = [
        severity_word(str(threat.get("details", "")))
        for vulnerability in vulnerabilities
        for threat in vulnerability.get("threats") or []
        if isinstance(threat, dict) and threat.get("category") == "impact"
    ]
    return highest(word for word in words if word is not None)


def _scores(vulnerabilities: list[dict[str, Any]]) -> Iterator[float | None]:
    for vulnerability in vulnerabilities:
        for score in vulnerability.get("scores") or []:
            if not isinstance(score, dict):
                continue
            for key in ("cvss_v3", "cvss_v2"):
                cvss = score.get(key)
                if isinstance(cvss, dict):
                    yield _score(cvss)


def _score(cvss: dict[str, Any]) -> float | None:
    base = cvss.get("baseScore")
    if isinstance(base, int | float) and not isinstance(base, bool):
        return float(base)
    vector = cvss.get("vectorString")
    return cvss_base_score(vector) if isinstance(vector, str) else None


def _reboot(vulnerabilities: list[dict[str, Any]]) -> bool | None:
    categories = set()
    for vulnerability in vulnerabilities:
        for remediation in vulnerability.get("remediations") or []:
            if isinstance(remediation, dict) and remediation.get("category") == "vendor_fix":
                restart = remediation.get("restart_required")
                if isinstance(restart, dict) and isinstance(restart.get("category"), str):
                    categories.add(restart["category"])
    if categories & _REBOOTS:
        return True
    if categories and categories <= _NO_REBOOTS:
        return False
    return None


def _vendor(header: dict[str, Any]) -> str:
    name = get_str(get_dict(header, "publisher", "/document"), "name", "/document/publisher")
    return "Red Hat" if name.startswith("Red Hat") else name


def _self_url(header: dict[str, Any]) -> str | None:
    for reference in header.get("references") or []:
        if isinstance(reference, dict) and reference.get("category") == "self":
            url = reference.get("url")
            if isinstance(url, str) and url:
                return url
    return None
