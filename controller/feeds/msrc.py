"""Microsoft's monthly security-update document (CVRF 1.1), as XML or as JSON.

The document is organised by vulnerability (CVE); patches are KBs, named by the `Vendor Fix`
remediations of each CVE. We turn it around: one record per KB (`KB5034127`), with every CVE it
fixes, the highest severity and CVSS base score over the products it is published for, the KBs it
replaces (`Supercedence`), whether it restarts the machine, and the fixed build per product
(`Windows 10 Version 22H2` and `21H2` share a KB but not a build). Remediations that are not KBs
(`Release Notes` of Edge, CBL-Mariner packages) are not Windows patches and are skipped.

Both JSON spellings are read: the MSRC API's (`"Remediations": [{"Type": 2, "Description":
{"Value": "5034127"}}]`) and the lower-case one of per-CVE extracts (`"remediations":
{"remediation": [{"type": "Vendor Fix", "description": "5034127"}]}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.core.patches import PatchRecord, ProductBuild, normalize_kb
from controller.feeds.common import (
    FeedError,
    FeedResult,
    RecordError,
    cvss_base_score,
    highest,
    load_json,
    local_name,
    max_rating,
    parse_xml,
    read_bytes,
    read_date,
    read_datetime,
    severity_word,
)
from controller.kinds.common import Classification, OsFamily, Severity

if TYPE_CHECKING:
    from datetime import date, datetime
    from pathlib import Path
    from xml.etree.ElementTree import Element


def accepts(path: Path) -> bool:
    """CVRF documents are XML or JSON files."""
    return path.suffix.lower() in {".xml", ".json"}


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:  # noqa: ARG001 - KBs name their products
    """One record per KB of a monthly document."""
    errors: list[FeedError] = []
    try:
        data = read_bytes(path)
        if data.lstrip()[:1] == b"<":
            document = _from_xml(parse_xml(data), errors, name)
        else:
            document = _from_json(load_json(data))
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    except RecursionError:  # branches nested deeper than the interpreter recurses
        return FeedResult.failure(name, "", "nested too deeply")
    records = build_records(document, source=f"msrc:{name}")
    # Each error is a remediation skipped: a KB's fix for one CVE that did not import.
    return FeedResult(records=records, errors=tuple(errors), failed=len(errors))


# --- the document, whatever its syntax --------------------------------------------------------


@dataclass(slots=True)
class Fix:
    """One `Vendor Fix` remediation that names a KB."""

    kb: str
    product_ids: tuple[str, ...]
    url: str = ""
    supersedes: tuple[str, ...] = ()
    restart: str = ""
    subtype: str = ""
    fixed_build: str = ""


@dataclass(slots=True)
class Vulnerability:
    """What one CVE says about products: severity and base score per product, and its KBs."""

    cve: str
    severity: dict[str, Severity] = field(default_factory=dict)  # by product id; "" = all
    scores: dict[str, float] = field(default_factory=dict)  # by product id
    fixes: list[Fix] = field(default_factory=list)


@dataclass(slots=True)
class Document:
    """A monthly document reduced to what the KB records need."""

    id: str
    released: date | None
    modified: datetime | None
    products: dict[str, str]  # product id -> full product name
    families: dict[str, str]  # product id -> product family (Windows, ESU, Microsoft Office, ...)
    vulnerabilities: list[Vulnerability]


def build_records(document: Document, *, source: str) -> tuple[PatchRecord, ...]:
    """One record per KB, sorted by id (purely computational)."""
    by_kb: dict[str, list[tuple[Vulnerability, Fix]]] = {}
    for vulnerability in document.vulnerabilities:
        for fix in vulnerability.fixes:
            by_kb.setdefault(fix.kb, []).append((vulnerability, fix))
    return tuple(_record(kb, by_kb[kb], document, source) for kb in sorted(by_kb))


def _record(
    kb: str, uses: list[tuple[Vulnerability, Fix]], document: Document, source: str
) -> PatchRecord:
    product_ids = sorted({pid for _, fix in uses for pid in fix.product_ids})
    names = sorted({document.products.get(pid, pid) for pid in product_ids})
    # One KB has one SubType in practice; the builds keep each remediation's own (`AzureHotpatch`
    # and `Security Update` KBs of one product are alternatives, see core/winproducts.py).
    subtype = next((fix.subtype for _, fix in uses if fix.subtype), "Security Update")
    builds = _builds(uses, document)
    distinct_builds = {b.build for b in builds}
    return PatchRecord(
        id=kb,
        title=_title(document.id, subtype, kb, names),
        vendor="Microsoft",
        product=", ".join(sorted({document.families.get(p, "") for p in product_ids} - {""})),
        os=OsFamily.WINDOWS,
        os_versions=tuple(names),
        classification=Classification.SECURITY,
        severity=highest(_severities(uses)),
        released=document.released,
        modified=document.modified,
        rating=max_rating(v.scores.get(p) for v, fix in uses for p in fix.product_ids),
        cves=tuple(sorted({v.cve for v, _ in uses if v.cve})),
        supersedes=tuple(sorted({old for _, fix in uses for old in fix.supersedes} - {kb})),
        reboot_required=_restart({fix.restart for _, fix in uses}),
        fixed_build=distinct_builds.pop() if len(distinct_builds) == 1 else None,
        builds=builds,
        url=_url(kb, {fix.url for _, fix in uses if fix.url}),
        source=source,
        extra={"subtype": subtype, "document": document.id},
    )


def _severities(uses: list[tuple[Vulnerability, Fix]]) -> list[Severity]:
    return [
        vulnerability.severity[pid]
        for vulnerability, fix in uses
        for pid in (*fix.product_ids, "")
        if pid in vulnerability.severity
    ]


def _builds(uses: list[tuple[Vulnerability, Fix]], document: Document) -> tuple[ProductBuild, ...]:
    builds = {
        ProductBuild(document.products.get(pid, pid), fix.fixed_build, pid, fix.subtype)
        for _, fix in uses
        if fix.fixed_build
        for pid in fix.product_ids
    }
    return tuple(sorted(builds, key=lambda b: (b.product, b.build, b.product_id)))


def _title(month: str, subtype: str, kb: str, products: list[str]) -> str:
    if not products:
        return f"{month} {subtype} {kb}"
    more = f" and {len(products) - 1} more" if len(products) > 1 else ""
    return f"{month} {subtype} {kb} for {products[0]}{more}"


def _restart(values: set[str]) -> bool | None:
    """Yes anywhere -> True; No everywhere -> False; Maybe or unknown -> None."""
    words = {value.strip().lower() for value in values} - {""}
    if "yes" in words:
        return True
    if words == {"no"}:
        return False
    return None


def _url(kb: str, urls: set[str]) -> str | None:
    # .NET rollups list the catalogue pages of their child KBs; prefer the one about this KB.
    digits = kb.removeprefix("KB")
    candidates = sorted(url for url in urls if digits in url) or sorted(urls)
    return candidates[0] if candidates else None


_KB_NUMBERS = re.compile(r"\d{6,8}")


def _superseded(text: str) -> tuple[str, ...]:
    return tuple(f"KB{number}" for number in _KB_NUMBERS.findall(text))


def _vendor_fix(  # noqa: PLR0913 - the fields of a remediation, from either syntax
    *,
    kind: str,
    description: str,
    product_ids: tuple[str, ...],
    url: str,
    supersedence: str,
    restart: str,
    subtype: str,
    fixed_build: str,
) -> Fix | None:
    """A Fix when the remediation is a Vendor Fix naming a KB."""
    if kind not in {"vendor fix", "2"}:
        return None
    kb = normalize_kb(description)
    if kb is None:
        return None
    return Fix(
        kb=kb,
        product_ids=product_ids,
        url=url,
        supersedes=_superseded(supersedence),
        restart=restart,
        subtype=subtype,
        fixed_build=fixed_build.strip(),
    )


def _threat_severity(kind: str, description: str) -> Severity | None:
    """The severity a threat states, when it is a Severity threat with a word we know."""
    if kind not in {"severity", "3"}:
        return None
    severity = severity_word(description)
    return None if severity in {None, Severity.UNSPECIFIED} else severity


def _score(base: str, vector: str) -> float | None:
    try:
        return float(base)
    except ValueError:
        return cvss_base_score(vector) if vector else None


def _remember(
    pid: str, name: str, family: str, products: dict[str, str], families: dict[str, str]
) -> None:
    """Record a product; the product tree lists products twice, in their family and flat."""
    products[pid] = name
    if family and family != "Microsoft":
        families[pid] = family
    else:
        families.setdefault(pid, "")


# --- XML --------------------------------------------------------------------------------------


def _from_xml(root: Element, errors: list[FeedError], name: str) -> Document:
    tracking = _child(root, "DocumentTracking")
    month = _text(_child(tracking, "Identification"), "ID") if tracking is not None else ""
    if local_name(root) != "cvrfdoc" or not month:
        message = "not an MSRC CVRF document (no DocumentTracking/Identification/ID)"
        raise RecordError(f"/{local_name(root)}", message)
    products: dict[str, str] = {}
    families: dict[str, str] = {}
    tree = _child(root, "ProductTree")
    if tree is not None:
        _xml_products(tree, "", products, families)
    vulnerabilities = []
    for index, element in enumerate(_children(root, "Vulnerability"), start=1):
        at = f"/cvrfdoc/Vulnerability[{index}]"
        vulnerabilities.append(_xml_vulnerability(element, at, errors, name))
    return Document(
        id=month,
        released=read_date(
            _text(tracking, "InitialReleaseDate"), "/cvrfdoc/DocumentTracking/InitialReleaseDate"
        ),
        modified=read_datetime(
            _text(tracking, "CurrentReleaseDate"), "/cvrfdoc/DocumentTracking/CurrentReleaseDate"
        ),
        products=products,
        families=families,
        vulnerabilities=vulnerabilities,
    )


def _xml_products(
    node: Element, family: str, products: dict[str, str], families: dict[str, str]
) -> None:
    for child in node:
        tag = local_name(child)
        if tag == "Branch":
            _xml_products(child, child.get("Name", family), products, families)
        elif tag == "FullProductName" and child.get("ProductID"):
            pid = child.get("ProductID", "")
            _remember(pid, (child.text or pid).strip(), family, products, families)


def _xml_vulnerability(
    element: Element, at: str, errors: list[FeedError], name: str
) -> Vulnerability:
    vulnerability = Vulnerability(cve=_text(element, "CVE"))
    for threat in _children(_child(element, "Threats"), "Threat"):
        severity = _threat_severity(threat.get("Type", "").lower(), _text(threat, "Description"))
        if severity is not None:
            for pid in _product_ids(threat) or ("",):
                vulnerability.severity[pid] = highest(
                    [severity, vulnerability.severity.get(pid, Severity.UNSPECIFIED)]
                )
    for score_set in _children(_child(element, "CVSSScoreSets"), "ScoreSet"):
        score = _score(_text(score_set, "BaseScore"), _text(score_set, "Vector"))
        for pid in _product_ids(score_set):
            if score is not None:
                vulnerability.scores[pid] = max(score, vulnerability.scores.get(pid, 0.0))
    remediations = _children(_child(element, "Remediations"), "Remediation")
    for index, remediation in enumerate(remediations, start=1):
        fix = _vendor_fix(
            kind=remediation.get("Type", "").lower(),
            description=_text(remediation, "Description"),
            product_ids=_product_ids(remediation),
            url=_text(remediation, "URL"),
            supersedence=_text(remediation, "Supercedence"),
            restart=_text(remediation, "RestartRequired"),
            subtype=_text(remediation, "SubType"),
            fixed_build=_text(remediation, "FixedBuild"),
        )
        if fix is not None and not fix.product_ids:
            where = f"{at}/Remediations/Remediation[{index}]"
            errors.append(FeedError(name, where, f"{fix.kb} names no ProductID; skipped"))
        elif fix is not None:
            vulnerability.fixes.append(fix)
    return vulnerability


def _child(element: Element | None, tag: str) -> Element | None:
    if element is None:
        return None
    return next((child for child in element if local_name(child) == tag), None)


def _children(element: Element | None, tag: str) -> list[Element]:
    if element is None:
        return []
    return [child for child in element if local_name(child) == tag]


def _text(element: Element | None, tag: str) -> str:
    child = _child(element, tag)
    return (child.text or "").strip() if child is not None else ""


def _product_ids(element: Element) -> tuple[str, ...]:
    return tuple((c.text or "").strip() for c in _children(element, "ProductID") if c.text)


# --- JSON -------------------------------------------------------------------------------------


def _from_json(raw: Any) -> Document:
    doc = _normalise(raw)
    if not isinstance(doc, dict):
        raise RecordError("/", "not an MSRC CVRF document (expected an object)")
    tracking = _obj(doc.get("documenttracking"))
    month = _value(_obj(tracking.get("identification")).get("id"))
    if not month:
        raise RecordError(
            "/DocumentTracking/Identification/ID",
            "not an MSRC CVRF document (no DocumentTracking/Identification/ID)",
        )
    products: dict[str, str] = {}
    families: dict[str, str] = {}
    _json_products(_obj(doc.get("producttree")), "", products, families)
    return Document(
        id=month,
        released=read_date(
            _value(tracking.get("initialreleasedate")), "/DocumentTracking/InitialReleaseDate"
        ),
        modified=read_datetime(
            _value(tracking.get("currentreleasedate")), "/DocumentTracking/CurrentReleaseDate"
        ),
        products=products,
        families=families,
        vulnerabilities=[_json_vulnerability(v) for v in _items(doc, "vulnerability", "")],
    )


def _normalise(value: Any) -> Any:
    """Keys lower-cased without underscores, so `ProductID` and `product_id` read alike."""
    if isinstance(value, dict):
        return {str(k).lower().replace("_", ""): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _json_products(
    node: dict[str, Any], family: str, products: dict[str, str], families: dict[str, str]
) -> None:
    for product in _items(node, "fullproductname", ""):
        pid = _value(product.get("productid"))
        if pid:
            _remember(pid, _value(product) or pid, family, products, families)
    for branch in _items(node, "branch", "branch") + _items(node, "items", ""):
        if branch.get("productid"):
            pid = _value(branch.get("productid"))
            _remember(pid, _value(branch) or pid, family, products, families)
        else:
            _json_products(branch, _value(branch.get("name")) or family, products, families)


def _json_vulnerability(raw: dict[str, Any]) -> Vulnerability:
    vulnerability = Vulnerability(cve=_value(raw.get("cve")))
    for threat in _items(raw, "threats", "threat"):
        kind, description = _value(threat.get("type")).lower(), _value(threat.get("description"))
        severity = _threat_severity(kind, description)
        if severity is not None:
            for pid in _ids(threat.get("productid")) or ("",):
                vulnerability.severity[pid] = highest(
                    [severity, vulnerability.severity.get(pid, Severity.UNSPECIFIED)]
                )
    for score_set in _items(raw, "cvssscoresets", "scoreset"):
        score = _score(_value(score_set.get("basescore")), _value(score_set.get("vector")))
        for pid in _ids(score_set.get("productid")):
            if score is not None:
                vulnerability.scores[pid] = max(score, vulnerability.scores.get(pid, 0.0))
    for remediation in _items(raw, "remediations", "remediation"):
        fix = _vendor_fix(
            kind=_value(remediation.get("type")).lower(),
            description=_value(remediation.get("description")),
            product_ids=_ids(remediation.get("productid")),
            url=_value(remediation.get("url")),
            supersedence=_value(remediation.get("supercedence")),
            restart=_value(remediation.get("restartrequired")),
            subtype=_value(remediation.get("subtype")),
            fixed_build=_value(remediation.get("fixedbuild")),
        )
        if fix is not None and fix.product_ids:
            vulnerability.fixes.append(fix)
    return vulnerability


def _items(node: dict[str, Any], key: str, inner: str) -> list[dict[str, Any]]:
    """A list of objects under `key`, whether it is a list or `{inner: [...]}` or one object."""
    value = node.get(key)
    if isinstance(value, dict) and inner and inner in value:
        value = value[inner]
    if isinstance(value, dict):
        value = [value]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _value(value: Any) -> str:
    """Text of a JSON value: a string, a number, or an object's `Value` or `text`."""
    if isinstance(value, dict):
        return _value(value.get("value", value.get("text")))
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _ids(value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(text for text in (_value(v) for v in values) if text)
