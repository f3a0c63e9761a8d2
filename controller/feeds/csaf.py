"""Red Hat CSAF 2.0 advisories (`RHSA-2023:7207.json`): one document is one record.

Mapping: `document.tracking.id`, `document.title`, `aggregate_severity` (else the highest
per-CVE impact), initial and current release dates, CVEs from `vulnerabilities[].cve`, rating from
the CVSS scores (the vendor's `baseScore`, else the vector). Fixed packages are the product ids of
`product_status.fixed` resolved through `product_tree.relationships` (package *component of*
platform): the platform's CPE names the release (`cpe:/o:redhat:enterprise_linux:8::baseos`
-> `rhel:8`, layered products `…::el9` -> `rhel:9`), the package's NEVRA (from its product id, or
its purl when the id is not a NEVRA) the name, fixed EVR and arch. A modular package is a component
of its module stream, itself a component of the platform (`AppStream-8.10.0.Z.MAIN:php:7.4:
8100020240102:a1b2c3d4:php-0:7.4.33-2.module+el8.10.0+….x86_64`; the module's purl is
`pkg:rpmmod/redhat/php@7.4:…`, newer documents put `rpmmod=php:7.4:…` on the package's purl): the
fixed package keeps the stream (`php:7.4`). Container images and source RPMs are not host packages
and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from controller.core import modules
from controller.core.patches import FixedPackage, PatchRecord, release_key
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
    pointer,
    read_bytes,
    read_date,
    read_datetime,
    require_object,
    severity_word,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

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
        record, notes = parse_document(document, source=f"csaf:{name}")
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    except RecursionError:  # branches nested deeper than the interpreter recurses
        return FeedResult.failure(name, "/product_tree", "nested too deeply")
    warnings = tuple(FeedError(name, position, message) for position, message in notes)
    return FeedResult(records=(record,), warnings=warnings)


def parse_document(
    doc: dict[str, Any], *, source: str
) -> tuple[PatchRecord, tuple[tuple[str, str], ...]]:
    """A patch record from one CSAF document, and warnings as (position, message) pairs
    (purely computational). RecordError for a document that cannot be read."""
    header = get_dict(doc, "document", "")
    tracking = get_dict(header, "tracking", "/document")
    advisory_id = get_str(tracking, "id", "/document/tracking", required=True)
    vulnerabilities = [
        require_object(raw, pointer("/vulnerabilities", index))
        for index, raw in enumerate(get_list(doc, "vulnerabilities", ""))
    ]
    tree = _ProductTree(get_dict(doc, "product_tree", ""))
    resolution = _fixed_packages(vulnerabilities, tree)
    packages, platforms = list(resolution.packages.values()), resolution.platforms
    rating = max_rating(_scores(vulnerabilities))
    aggregate = get_str(get_dict(header, "aggregate_severity", "/document"), "text", "/document")
    default_class = (
        Classification.SECURITY
        if get_str(header, "category", "/document") == "csaf_security_advisory"
        else Classification.OTHER
    )
    record = PatchRecord(
        id=advisory_id,
        title=get_str(header, "title", "/document"),
        vendor=_vendor(header),
        product=join_names(platforms) or join_names(p.name for p in packages),
        os=OsFamily.LINUX,
        os_versions=tuple(sorted({p.release for p in packages})),
        classification=classification_from_id(advisory_id, default_class),
        severity=severity_word(aggregate) or _impact(vulnerabilities),
        released=read_date(
            get_str(tracking, "initial_release_date", "/document/tracking"),
            "/document/tracking/initial_release_date",
        ),
        modified=read_datetime(
            get_str(tracking, "current_release_date", "/document/tracking"),
            "/document/tracking/current_release_date",
        ),
        rating=rating,
        cves=cve_ids(get_str(v, "cve", "") for v in vulnerabilities),
        reboot_required=_reboot(vulnerabilities),
        packages=tuple(sorted(packages, key=lambda p: (p.release, p.name, p.arch or ""))),
        url=_self_url(header),
        source=source,
    )
    return record, _warnings(advisory_id, vulnerabilities, resolution)


def _warnings(
    advisory_id: str, vulnerabilities: list[dict[str, Any]], resolution: _Resolution
) -> tuple[tuple[str, str], ...]:
    notes = []
    if not resolution.packages:
        if resolution.unresolved:
            count = len(resolution.unresolved)
            position = resolution.unresolved[0]
            reason = (
                f"none of its {count} fixed product id(s) names an OS package with a release"
                " (container images, source packages and products without purl, NEVRA or"
                " platform CPE are not host packages)"
            )
        else:
            position = "/vulnerabilities" if vulnerabilities else "/"
            reason = "no vulnerability lists a fixed, first_fixed or recommended product"
        notes.append((position, f"{advisory_id} can match no host: {reason}"))
    if resolution.unfixed:
        message = (
            f"{len(resolution.unfixed)} known_affected package(s) have no fix in this advisory:"
            " nothing to install for them"
        )
        notes.append((resolution.unfixed[0], message))
    return tuple(notes)


# --- product tree ---------------------------------------------------------------------------

_NEVRA = re.compile(
    r"^(?P<name>[^\s/:]+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:\s]+)-(?P<release>[^-:\s]+)"
    r"\.(?P<arch>[a-z0-9_]+)$"
)
_HOST_ARCHES = frozenset(
    {"x86_64", "i686", "i386", "aarch64", "ppc64le", "ppc64", "s390x", "s390", "noarch", "armv7hl"}
)
_DEB_SOURCE_ARCHES = frozenset({"source", "src"})
_CPE_EL = re.compile(r"(?:^|[^a-z])el(\d+)")
_DIST_TAG = re.compile(r"\.el(\d+)")
# (CPE vendor, CPE product prefix) -> os-release ID of the platform.
_CPE_PLATFORMS = (
    ("redhat", "enterprise_linux", "rhel"),
    ("redhat", "rhel_", "rhel"),
    ("almalinux", "almalinux", "almalinux"),
    ("rocky", "rocky", "rocky"),
    ("rockylinux", "rocky", "rocky"),
    ("debian", "debian_linux", "debian"),
    ("canonical", "ubuntu_linux", "ubuntu"),
    ("oracle", "linux", "ol"),
    ("centos", "centos", "centos"),
    ("fedoraproject", "fedora", "fedora"),
    ("amazon", "linux", "amzn"),
)
_PURL_DISTROS = {"redhat": "rhel", "rhel": "rhel", "almalinux": "almalinux", "rocky": "rocky"}
_PURL_DISTROS |= {"debian": "debian", "ubuntu": "ubuntu", "centos": "centos", "fedora": "fedora"}
_PURL_DISTROS |= {"oracle": "ol", "amazon": "amzn", "amzn": "amzn"}
_DISTRO_QUALIFIER = re.compile(r"^(?:[a-z]+-)?v?(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class _Product:
    """A product as the tree describes it: its name, helpers and the branches above it."""

    name: str
    cpe: str = ""
    purl: str = ""
    branch: tuple[tuple[str, str], ...] = ()  # (category, name) from the root down


@dataclass(frozen=True, slots=True)
class _Package:
    name: str
    version: str
    arch: str | None
    family: str  # rpm | deb: how the version is spelled
    release: str | None  # what the package itself says (purl `distro`, `.elN` tag)
    module: str | None = None  # the module stream its purl names (`rpmmod=php:7.4:…`)


@dataclass(frozen=True, slots=True)
class _Purl:
    kind: str
    namespace: str
    name: str
    version: str
    qualifiers: dict[str, str]


def _parse_purl(text: str) -> _Purl | None:
    """`pkg:rpm/redhat/c-ares@1.19.1-2.el9_4?arch=x86_64&epoch=1` (purl-spec); None if not one."""
    if not text.startswith("pkg:"):
        return None
    rest = text[4:].split("#", 1)[0]
    rest, _, query = rest.partition("?")
    rest, _, version = rest.partition("@")
    parts = [unquote(part) for part in rest.strip("/").split("/")]
    if len(parts) < 2 or not parts[-1]:
        return None
    qualifiers = {}
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        qualifiers[key.lower()] = unquote(value)
    return _Purl(
        parts[0].lower(), "/".join(parts[1:-1]).lower(), parts[-1], unquote(version), qualifiers
    )


class _ProductTree:
    """Product ids of a CSAF product tree and how packages relate to platforms, in every layout
    CSAF 2.0 allows: products at the leaves of `branches`, in `full_product_names`, and the
    products `relationships` build (package *component of*, *installed on* … platform)."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.products: dict[str, _Product] = {}
        at = "/product_tree"
        self._branches(get_list(tree, "branches", at), pointer(at, "branches"), ())
        for index, raw in enumerate(get_list(tree, "full_product_names", at)):
            product_at = pointer(at, "full_product_names", index)
            self._add(require_object(raw, product_at), (), product_at)
        self.relationships: dict[str, tuple[str, str]] = {}
        for index, raw in enumerate(get_list(tree, "relationships", at)):
            relation_at = pointer(at, "relationships", index)
            relation = require_object(raw, relation_at)
            full = get_dict(relation, "full_product_name", relation_at)
            product_id = get_str(full, "product_id", pointer(relation_at, "full_product_name"))
            if product_id:
                self.relationships[product_id] = (
                    get_str(relation, "product_reference", relation_at, required=True),
                    get_str(relation, "relates_to_product_reference", relation_at, required=True),
                )
                self.products.setdefault(product_id, _Product(get_str(full, "name", relation_at)))

    def _branches(self, branches: list[Any], at: str, path: tuple[tuple[str, str], ...]) -> None:
        for index, raw in enumerate(branches):
            branch_at = pointer(at, index)
            branch = require_object(raw, branch_at)
            here = (
                *path,
                (get_str(branch, "category", branch_at), get_str(branch, "name", branch_at)),
            )
            product = get_dict(branch, "product", branch_at)
            if product:
                self._add(product, here, pointer(branch_at, "product"))
            children = get_list(branch, "branches", branch_at)
            self._branches(children, pointer(branch_at, "branches"), here)

    def _add(self, product: dict[str, Any], path: tuple[tuple[str, str], ...], at: str) -> None:
        product_id = get_str(product, "product_id", at, required=True)
        helper = get_dict(product, "product_identification_helper", at)
        helper_at = pointer(at, "product_identification_helper")
        self.products[product_id] = _Product(
            name=get_str(product, "name", at),
            cpe=get_str(helper, "cpe", helper_at),
            purl=get_str(helper, "purl", helper_at),
            branch=path,
        )

    def resolve(self, product_id: str) -> tuple[FixedPackage, str] | None:
        """The host package a product id stands for and its platform's name, or None for
        container images, source packages and ids the tree does not explain."""
        package_ref, platform_ref = self.relationships.get(product_id, (product_id, ""))
        stream = None
        if platform_ref in self.relationships:
            # package -> module stream -> platform: the platform is one step further.
            module_ref, platform_ref = self.relationships[platform_ref]
            stream = self._stream(module_ref)
        package = self._package(package_ref)
        if package is None:
            return None
        stream = stream or package.module
        platform = self.products.get(platform_ref)
        release = _platform_release(platform.cpe if platform else "") or package.release
        if release is None:
            product = self.products.get(package_ref)
            release = _platform_release(product.cpe) if product else None
        if release is None:
            return None
        fixed = FixedPackage(package.name, package.version, release, package.arch, module=stream)
        return fixed, platform.name if platform else ""

    def _stream(self, module_ref: str) -> str | None:
        """`php:7.4` for a module product (`pkg:rpmmod/redhat/php@7.4:…`, id `php:7.4:V:C`)."""
        product = self.products.get(module_ref)
        purl = _parse_purl(product.purl) if product else None
        if purl is not None and purl.kind == "rpmmod" and purl.version:
            text = f"{purl.name}:{purl.version}"
        elif module_ref.count(":") == 3:  # name:stream:version:context
            text = module_ref
        else:
            return None
        try:
            return modules.parse_stream(text)
        except ValueError:
            return None

    def _package(self, product_id: str) -> _Package | None:
        product = self.products.get(product_id)
        purl = _parse_purl(product.purl) if product else None
        if purl is not None and purl.kind not in {"rpm", "deb"}:
            return None  # a container image, a language package or another non-OS artefact
        if purl is not None and purl.version:
            return _purl_package(purl)
        # Red Hat writes the NEVRA in the id (and the name); a purl without version names the
        # package only.
        for text in (product_id, product.name if product else ""):
            nevra = _parse_nevra(text)
            if nevra is not None:
                return nevra
        return _branch_package(product, purl) if product else None


def _purl_package(purl: _Purl) -> _Package | None:
    arch = purl.qualifiers.get("arch") or None
    distro = _PURL_DISTROS.get(purl.namespace)
    if purl.kind == "rpm":
        if arch is not None and arch not in _HOST_ARCHES:
            return None  # a source RPM
        epoch = purl.qualifiers.get("epoch") or "0"
        version = purl.version if ":" in purl.version else f"{epoch}:{purl.version}"
        release = _rpm_release(distro, purl, version)
        return _Package(purl.name, version, arch, "rpm", release, _rpmmod(purl))
    if arch in _DEB_SOURCE_ARCHES:
        return None  # hosts install binaries; a source package is matched through them
    release = _distro_release(distro, purl.qualifiers.get("distro", ""))
    return _Package(purl.name, purl.version, arch, "deb", release)


def _rpmmod(purl: _Purl) -> str | None:
    try:
        return modules.parse_stream(purl.qualifiers["rpmmod"])
    except (KeyError, ValueError):
        return None  # no qualifier, or one that is not `name:stream:…`


def _rpm_release(distro: str | None, purl: _Purl, version: str) -> str | None:
    release = _distro_release(distro, purl.qualifiers.get("distro", ""))
    if release is None and distro in {None, "rhel", "almalinux", "rocky", "centos", "ol"}:
        tag = _DIST_TAG.search(version)
        release = release_key(distro or "rhel", tag.group(1)) if tag else None
    return release


def _distro_release(distro: str | None, qualifier: str) -> str | None:
    """`debian:12` for namespace debian and `distro=debian-12` (`rhel-8.9` -> `rhel:8`)."""
    match = _DISTRO_QUALIFIER.match(qualifier.lower())
    if distro is None or match is None:
        return None
    return release_key(distro, match.group(1))


def _parse_nevra(text: str) -> _Package | None:
    """The RPM of a NEVRA such as `c-ares-0:1.13.0-9.el8.x86_64`; None for sources and others."""
    match = _NEVRA.match(text)
    if match is None or match.group("arch") not in _HOST_ARCHES:
        return None
    epoch = match.group("epoch") or "0"
    evr = f"{epoch}:{match.group('version')}-{match.group('release')}"
    tag = _DIST_TAG.search(evr)
    release = f"rhel:{tag.group(1)}" if tag else None
    return _Package(match.group("name"), evr, match.group("arch"), "rpm", release)


def _branch_package(product: _Product, purl: _Purl | None) -> _Package | None:
    """A package named by the branches above it: `product_name` openssl, `product_version`
    3.0.15-1~deb12u1, `architecture` amd64 (the layout of vendors that write no NEVRA)."""
    names = dict(product.branch)
    name = names.get("product_name") or (purl.name if purl else "")
    version = names.get("product_version", "")
    if not name or not version or name == version:
        return None
    arch = names.get("architecture") or None
    family = purl.kind if purl else ("rpm" if _DIST_TAG.search(version) else "deb")
    if family == "rpm":
        if arch is not None and arch not in _HOST_ARCHES:
            return None
        version = version if ":" in version else f"0:{version}"
    elif arch in _DEB_SOURCE_ARCHES:
        return None
    tag = _DIST_TAG.search(version) if family == "rpm" else None
    return _Package(name, version, arch, family, f"rhel:{tag.group(1)}" if tag else None)


def _platform_release(cpe: str) -> str | None:
    """The release a platform's CPE names: `cpe:/o:redhat:enterprise_linux:8::baseos` ->
    `rhel:8`, `cpe:2.3:o:debian:debian_linux:12:*:…` -> `debian:12`, layered `…::el9` ->
    `rhel:9`."""
    text = cpe.strip().lower()
    if text.startswith("cpe:2.3:"):
        fields = text[8:].split(":")
    elif text.startswith("cpe:/"):
        fields = text[5:].split(":")
    else:
        return None
    fields += [""] * (6 - len(fields))
    vendor, product, version = fields[1], fields[2], fields[3]
    for cpe_vendor, prefix, distro in _CPE_PLATFORMS:
        if vendor == cpe_vendor and product.startswith(prefix):
            match = _DISTRO_QUALIFIER.match(version)
            return release_key(distro, match.group(1)) if match else None
    el = _CPE_EL.search(fields[5] if text.startswith("cpe:/") else ":".join(fields[4:]))
    return f"rhel:{el.group(1)}" if el and vendor == "redhat" else None


# product_status lists whose products carry the fix: the version to install.
_FIX_STATUSES = ("fixed", "first_fixed", "recommended")


@dataclass(slots=True)
class _Resolution:
    """What the product statuses of a document resolved to."""

    packages: dict[tuple[str, str, str | None, str], FixedPackage]
    platforms: set[str]
    unresolved: list[str]  # pointers of fix statuses that name no host package
    unfixed: list[str]  # known_affected packages without a fix in the document


def _fixed_packages(vulnerabilities: list[dict[str, Any]], tree: _ProductTree) -> _Resolution:
    """The distinct fixed host packages, the platforms they ship on, and what did not resolve."""
    found = _Resolution({}, set(), [], [])
    affected: list[tuple[FixedPackage, str]] = []
    for index, vulnerability in enumerate(vulnerabilities):
        at = pointer("/vulnerabilities", index)
        status_at = pointer(at, "product_status")
        status = get_dict(vulnerability, "product_status", at)
        for key in (*_FIX_STATUSES, "known_affected"):
            for item, product_id in enumerate(get_list(status, key, status_at)):
                item_at = pointer(status_at, key, item)
                if not isinstance(product_id, str) or not product_id:
                    raise RecordError(item_at, "expected a product id (text)")
                resolved = tree.resolve(product_id)
                if resolved is None:
                    if key != "known_affected":
                        found.unresolved.append(item_at)
                    continue
                package, platform = resolved
                if key == "known_affected":
                    affected.append((package, item_at))
                    continue
                found.packages[(package.release, package.name, package.arch, package.version)] = (
                    package
                )
                found.platforms.add(platform)
    fixed_names = {(p.release, p.name) for p in found.packages.values()}
    found.unfixed = [
        at for package, at in affected if (package.release, package.name) not in fixed_names
    ]
    return found


# --- severity, rating, reboot -----------------------------------------------------------------


def _impact(vulnerabilities: list[dict[str, Any]]) -> Severity:
    words = [
        severity_word(str(threat.get("details", "")))
        for index, vulnerability in enumerate(vulnerabilities)
        for threat in get_list(vulnerability, "threats", pointer("/vulnerabilities", index))
        if isinstance(threat, dict) and threat.get("category") == "impact"
    ]
    return highest(word for word in words if word is not None)


def _scores(vulnerabilities: list[dict[str, Any]]) -> Iterator[float | None]:
    for index, vulnerability in enumerate(vulnerabilities):
        for score in get_list(vulnerability, "scores", pointer("/vulnerabilities", index)):
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
    for index, vulnerability in enumerate(vulnerabilities):
        at = pointer("/vulnerabilities", index)
        for remediation in get_list(vulnerability, "remediations", at):
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
    for reference in get_list(header, "references", "/document"):
        if isinstance(reference, dict) and reference.get("category") == "self":
            url = reference.get("url")
            if isinstance(url, str) and url:
                return url
    return None
