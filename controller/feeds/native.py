"""The native patchctl feed: YAML or JSON, a list of records or `{records: [...]}`.

Each record is validated with pydantic (unknown fields are errors); a record that fails names its
index and field (`/records/3/severity`, and the line in YAML) and the other records still import.
Severity accepts vendor words (`High`, `Medium`) and folds them with `Severity.parse`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, ValidationError

from controller.core.patches import FixedPackage, PatchRecord, ProductBuild
from controller.feeds.common import (
    FeedError,
    FeedResult,
    RecordError,
    load_json,
    pointer,
    read_bytes,
    severity_word,
)
from controller.kinds.common import (
    Classification,
    Model,
    OsFamily,
    PatchId,
    Severity,
    independent_errors,
)
from controller.sources import documents

if TYPE_CHECKING:
    from pathlib import Path

SUFFIXES = (".yaml", ".yml", ".json")


def _fold_severity(value: Any) -> Any:
    if isinstance(value, str):
        severity = severity_word(value)
        if severity is None:
            raise ValueError(
                f"{value!r} is not a severity (critical, important/high, moderate/medium, low)"
            )
        return severity
    return value


class NativePackage(Model):
    """A package version that carries the fix."""

    name: str = Field(min_length=1, description="Binary package name, as installed on hosts.")
    version: str = Field(min_length=1, description="Fixed version in the ecosystem's syntax.")
    release: str = Field(
        min_length=1, description="OS release key such as `debian:12` or `almalinux:9`."
    )
    arch: str | None = Field(
        default=None, description="Architecture; `source` for a source package."
    )
    source_name: str | None = Field(default=None, description="Source package name.")
    module: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*:[A-Za-z0-9][A-Za-z0-9_.+-]*$",
        description="RHEL family: the module stream of the build (`php:7.4`); it then only "
        "updates hosts on that stream.",
    )


class NativeBuild(Model):
    """The build of a Windows product that contains the KB."""

    product: str = Field(min_length=1, description="Product name, e.g. `Windows Server 2019`.")
    build: str = Field(min_length=1, description="Fixed build, e.g. `10.0.17763.5329`.")
    product_id: str = Field(default="", description="The vendor's product id.")
    subtype: str = Field(
        default="",
        description="The remediation's SubType (`Security Update`, `AzureHotpatch`, `Monthly "
        "Rollup`, `Security Only`): alternatives for one product and day; a device takes one "
        "channel's (hotpatch only when enrolled).",
    )


class NativeRecord(Model):
    """One patch of the native feed."""

    id: PatchId = Field(description="Patch id: `KB5034127`, `USN-7000-1`, `openssl=3.0.15-1`.")
    title: str = Field(default="", description="Human title.")
    vendor: str = Field(default="", description="Publisher.")
    product: str = Field(default="", description="Product or package the patch is for.")
    os: OsFamily | None = Field(default=None, description="OS family.")
    os_versions: tuple[str, ...] = Field(default=(), description="OS versions or release keys.")
    classification: Classification = Field(
        default=Classification.OTHER, description="security, critical, bugfix, ..."
    )
    severity: Annotated[Severity, BeforeValidator(_fold_severity)] = Field(
        default=Severity.UNSPECIFIED, description="Vendor severity; synonyms are folded."
    )
    release_date: date | None = Field(default=None, description="Release date (YYYY-MM-DD).")
    modified: datetime | None = Field(default=None, description="Last change of the record.")
    rating: float | None = Field(default=None, ge=0, le=10, description="Score 0-10 (CVSS).")
    cves: tuple[Annotated[str, Field(pattern=r"^CVE-\d{4}-\d{4,}$")], ...] = Field(
        default=(), description="CVE ids."
    )
    superseded_by: tuple[PatchId, ...] = Field(default=(), description="Patches replacing this.")
    supersedes: tuple[PatchId, ...] = Field(default=(), description="Patches this one replaces.")
    reboot_required: bool | None = Field(default=None, description="Install needs a reboot.")
    packages: tuple[NativePackage, ...] = Field(default=(), description="Fixed package versions.")
    fixed_build: str | None = Field(default=None, description="Windows: OS build with the KB.")
    builds: tuple[NativeBuild, ...] = Field(default=(), description="Windows: builds per product.")
    url: str | None = Field(default=None, description="Advisory or download page.")
    withdrawn: bool = Field(default=False, description="The vendor withdrew the patch.")

    def to_record(self, *, source: str) -> PatchRecord:
        return PatchRecord(
            id=self.id,
            title=self.title,
            vendor=self.vendor,
            product=self.product,
            os=self.os,
            os_versions=self.os_versions,
            classification=self.classification,
            severity=self.severity,
            released=self.release_date,
            modified=self.modified,
            rating=self.rating,
            cves=tuple(sorted(set(self.cves))),
            superseded_by=self.superseded_by,
            supersedes=self.supersedes,
            reboot_required=self.reboot_required,
            packages=tuple(
                FixedPackage(p.name, p.version, p.release, p.arch, p.source_name, module=p.module)
                for p in self.packages
            ),
            fixed_build=self.fixed_build,
            builds=tuple(
                ProductBuild(b.product, b.build, b.product_id, b.subtype) for b in self.builds
            ),
            url=self.url,
            withdrawn=self.withdrawn,
            source=source,
        )


def accepts(path: Path) -> bool:
    """YAML and JSON files."""
    return path.suffix.lower() in SUFFIXES


def parse_file(path: Path, *, name: str, release: str | None) -> FeedResult:  # noqa: ARG001 - native records name their release
    """Every valid record of a native feed file, and an error per invalid one."""
    try:
        items, base, lines, refused = _load(path)
    except RecordError as exc:
        return FeedResult.failure(name, exc.position, exc.message)
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        at = pointer(base, index)
        refusal = _refusal(at, refused)
        if refusal is not None:
            errors.append(FeedError(name, refusal[0], refusal[1]))
            continue
        try:
            value = _construct(item) if isinstance(item, yaml.Node) else item
            record = NativeRecord.model_validate(value).to_record(source=f"native:{name}")
        except RecordError as exc:
            errors.append(FeedError(name, exc.position, exc.message))
            continue
        except ValidationError as exc:
            errors.extend(_validation_errors(name, at, exc, lines))
            continue
        if record.id in seen:
            message = f"duplicate id {record.id!r}, first at {pointer(base, seen[record.id])}"
            errors.append(FeedError(name, _where(at, (), lines), message))
            continue
        seen[record.id] = index
        records.append(record)
    # Every item is a record or failed, however many errors it has.
    return FeedResult(
        records=tuple(records), errors=tuple(errors), failed=len(items) - len(records)
    )


# Line numbers of YAML nodes, by JSON pointer, so errors can say where a record is.
LineMap = dict[str, int]


def _load(path: Path) -> tuple[list[Any], str, LineMap, dict[str, str]]:
    """The records (values from JSON; composed nodes from YAML, each constructed on its own so
    that a bad value fails its record only), their base pointer, the line of every YAML node,
    and the constructs refused per node pointer. RecordError when the file itself is bad."""
    data = read_bytes(path)
    if path.suffix.lower() == ".json":
        return (*_record_list(load_json(data)), {}, {})
    try:
        loader = documents.StrictLoader(data)  # type: ignore[arg-type] # the Reader takes bytes
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        lines: LineMap = {}
        refused: dict[str, str] = {}
        if node is not None:
            _map_lines(node, "", lines, refused, set())
        shape = _record_nodes(node)
        if shape is None:
            # Not a list of records: the strict constructor names a bad value, else the shape
            # expected is the error.
            return (*_record_list(_construct(node) if node is not None else None), lines, refused)
        _refuse_outside_records(refused, shape[1])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecordError(where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RecordError("", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise RecordError("", "invalid YAML: nesting is too deep") from None
    return shape[0], shape[1], lines, refused


def _record_nodes(node: yaml.Node | None) -> tuple[list[Any], str] | None:
    """The record nodes of `[...]` or `{records: [...]}`, with their base pointer."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value), ""
    if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        key, value = node.value[0]
        if key.value == "records" and isinstance(value, yaml.SequenceNode):
            return list(value.value), "/records"
    return None


def _construct(node: yaml.Node) -> Any:
    """A node's value through the policy loader's strict constructor (`documents.StrictLoader`):
    a value YAML cannot build (`2027-02-30`, `0x_`), a duplicate key, a merge key or `!!binary`
    is a RecordError at its line and column, never a traceback."""
    loader = documents.StrictLoader("")
    try:
        return loader.construct_document(node)
    except documents.NodeError as exc:
        mark = exc.node.start_mark
        raise RecordError(f"line {mark.line + 1}, column {mark.column + 1}", exc.message) from None
    except yaml.MarkedYAMLError as exc:  # e.g. a tag no constructor knows (`!foo`)
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecordError(where, f"invalid YAML: {exc.problem or exc}") from None
    except RecursionError:
        raise RecordError("", "invalid YAML: nesting is too deep") from None
    finally:
        loader.dispose()


def _map_lines(
    node: yaml.Node, at: str, lines: LineMap, refused: dict[str, str], seen: set[int]
) -> None:
    """Fill `lines`; refuse aliases in `refused` (the strict constructor refuses duplicate and
    merge keys). An alias `*name` writes the value elsewhere than where a reviewer reads it, and
    aliases let a small file expand without bound."""
    line = node.start_mark.line + 1
    if id(node) in seen:
        message = (
            f"YAML aliases (*name) are not accepted (the value anchored at line {line});"
            " write the value out"
        )
        refused.setdefault(at, message)
        return
    seen.add(id(node))
    lines[at] = line
    if isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _map_lines(child, pointer(at, index), lines, refused, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            key_at = pointer(at, str(key.value))
            _map_lines(child, key_at, lines, refused, seen)
            lines[key_at] = key.start_mark.line + 1


def _refuse_outside_records(refused: dict[str, str], base: str) -> None:
    """RecordError for a refused construct that belongs to no record (the file's own shape)."""
    outside = [where for where in refused if not where.startswith(f"{base}/")]
    if outside:
        raise RecordError(outside[0] or "/", refused[outside[0]])


def _refusal(at: str, refused: dict[str, str]) -> tuple[str, str] | None:
    """The first refused construct at or under `at`, as (pointer, message)."""
    for where, message in refused.items():
        if where == at or where.startswith(f"{at}/"):
            return where, message
    return None


def _record_list(document: Any) -> tuple[list[Any], str]:
    if isinstance(document, list):
        return document, ""
    if isinstance(document, dict) and set(document) == {"records"}:
        records = document["records"]
        if isinstance(records, list):
            return records, "/records"
        raise RecordError("/records", "expected a list of records")
    raise RecordError("/", "expected a list of records or a mapping with only `records: [...]`")


def _validation_errors(name: str, at: str, exc: ValidationError, lines: LineMap) -> list[FeedError]:
    return [
        FeedError(name, _where(at, error["loc"], lines), _message(error))
        for error in independent_errors(exc.errors(include_url=False))
    ]


def _where(at: str, loc: tuple[int | str, ...], lines: LineMap) -> str:
    path = pointer(at, *loc)
    # The nearest YAML node we know a line for: the field itself, else its parents.
    probe = path
    while probe and probe not in lines:
        probe = probe.rsplit("/", 1)[0]
    line = lines.get(probe)
    return f"{path} (line {line})" if line else path


def _message(error: Any) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(message).removeprefix("Value error, ")
    if "input" in error:
        shown = json.dumps(error["input"], default=str)
        if len(shown) <= 60:
            return f"{message} (got {shown})"
    return str(message)
