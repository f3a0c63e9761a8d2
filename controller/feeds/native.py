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
from controller.kinds.common import Classification, Model, OsFamily, PatchId, Severity
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


class NativeBuild(Model):
    """The build of a Windows product that contains the KB."""

    product: str = Field(min_length=1, description="Product name, e.g. `Windows Server 2019`.")
    build: str = Field(min_length=1, description="Fixed build, e.g. `10.0.17763.5329`.")
    product_id: str = Field(default="", description="The vendor's product id.")


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
                FixedPackage(p.name, p.version, p.release, p.arch, p.source_name)
                for p in self.packages
            ),
            fixed_build=self.fixed_build,
            builds=tuple(ProductBuild(b.product, b.build, b.product_id) for b in self.builds),
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
        document, lines = _load(path)
        items, base = _record_list(document)
    except RecordError as exc:
        return FeedResult(errors=(FeedError(name, exc.position, exc.message),))
    records: list[PatchRecord] = []
    errors: list[FeedError] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        at = pointer(base, index)
        try:
            record = NativeRecord.model_validate(item).to_record(source=f"native:{name}")
        except ValidationError as exc:
            errors.extend(_validation_errors(name, at, exc, lines))
            continue
        if record.id in seen:
            message = f"duplicate id {record.id!r}, first at {pointer(base, seen[record.id])}"
            errors.append(FeedError(name, _where(at, (), lines), message))
            continue
        seen[record.id] = index
        records.append(record)
    return FeedResult(records=tuple(records), errors=tuple(errors))


# Line numbers of YAML nodes, by JSON pointer, so errors can say where a record is.
LineMap = dict[str, int]


def _load(path: Path) -> tuple[Any, LineMap]:
    data = read_bytes(path)
    if path.suffix.lower() == ".json":
        return load_json(data), {}
    try:
        # The policy loader's strict constructor: a duplicate key or a merge key is an error,
        # and a value YAML cannot build (`released: 2027-02-30`) is located, not a traceback.
        loader = documents.StrictLoader(data)  # type: ignore[arg-type] # the Reader takes bytes
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except documents.NodeError as exc:
        mark = exc.node.start_mark
        raise RecordError(f"line {mark.line + 1}, column {mark.column + 1}", exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecordError(where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RecordError("", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise RecordError("", "invalid YAML: nesting is too deep") from None
    lines: LineMap = {}
    if node is not None:
        _map_lines(node, "", lines)
    return document, lines


def _map_lines(node: yaml.Node, at: str, lines: LineMap) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _map_lines(child, pointer(at, index), lines)
    elif isinstance(node, yaml.MappingNode):
        for key, child in node.value:
            key_at = pointer(at, str(key.value))
            _map_lines(child, key_at, lines)
            lines[key_at] = key.start_mark.line + 1


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
        for error in exc.errors(include_url=False)
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
