"""Policy files → a validated DesiredState, or every problem found on the way.

Errors are collected, not raised at the first: YAML syntax, schema and cross-reference errors
alike come back as `path:line:col: field.path: message`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from controller.core import references
from controller.core.desired import DesiredState, Origin
from controller.kinds import API_VERSION, KINDS, Document, ObjectKey
from controller.kinds.common import independent_errors
from controller.sources.documents import (
    Problem,
    RawDocument,
    format_field_path,
    parse_file,
    parse_plain,
)
from controller.vocabularies import pattern_meaning

POLICY_DIRS = ("policies", "inventory")
MAX_MESSAGE_CHARS = 300
YAML_SUFFIXES = (".yaml", ".yml")


SUBMODULE_IGNORED = "git submodule: ignored (policy is read from this repository only)"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A policy file's path (relative to the repository root) and bytes, or why it was refused.

    `ignored`: the refusal is a warning, not an error; the path is left out and the rest loads
    (a git submodule under a policy folder).
    """

    path: str
    data: bytes | None
    refusal: str | None = None
    ignored: bool = False


def ignored_submodule(path: str) -> SourceFile:
    """The warning for a git submodule under a policy folder, from a working tree or a commit
    alike: git does not read a submodule's files as part of the commit, so neither do we."""
    return SourceFile(path, None, SUBMODULE_IGNORED, ignored=True)


def unread_file(path: str) -> SourceFile | None:
    """The warning for a file under a policy folder that is not read as policy (`x.json`,
    `x.YAML`: policy files end in lowercase `.yaml` or `.yml`), so a policy written there is
    not skipped without a word; None for a policy file, and for what is never policy: hidden
    files and folders (`.gitkeep`, editor swap files) and Markdown notes (`README.md`). Both
    readers (`files.read_tree`, `git.read_commit`) ask it, so a working tree and a commit warn
    alike; like a submodule's, the warning does not fail validation."""
    name = path.rsplit("/", 1)[-1]
    if (
        is_policy_path(path)
        or not is_under_policy_dirs(path)
        or any(part.startswith(".") for part in path.split("/"))
        or name.lower().endswith(".md")
    ):
        return None
    stem, _, suffix = name.rpartition(".")
    hint = f" (suffixes are case-sensitive: rename it to {stem}.{suffix.lower()})"
    shown = hint if f".{suffix.lower()}" in YAML_SUFFIXES else ""
    message = f"not read as policy: policy files end in .yaml or .yml{shown}"
    return SourceFile(path, None, message, ignored=True)


def is_under_policy_dirs(path: str) -> bool:
    """Whether `path` is a policy folder or inside one (whatever its suffix)."""
    return path.split("/", 1)[0] in POLICY_DIRS


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The state when the tree is valid, and every problem (errors and warnings) regardless."""

    state: DesiredState | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.warning)

    @property
    def ok(self) -> bool:
        return self.state is not None


def is_policy_path(path: str) -> bool:
    top = path.split("/", 1)[0]
    return top in POLICY_DIRS and path.endswith(YAML_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One policy file of a revision: its source, its valid objects and its own problems."""

    source: SourceFile
    objects: tuple[Document, ...]
    lines: tuple[int, ...]  # the line each object's document starts on
    problems: tuple[Problem, ...]  # YAML and schema problems; cross-references are checked later
    raw: tuple[RawDocument, ...] | None = None  # per object, with positions (reference parse)

    @property
    def path(self) -> str:
        return self.source.path


def parse_reference(source: SourceFile) -> ParsedFile:
    """A policy file's objects and problems, every problem located (`documents.parse_file`)."""
    if source.data is None:
        return ParsedFile(source, (), (), (refusal_problem(source),), ())
    raw, problems = parse_file(source.path, source.data)
    objects: list[Document] = []
    raw_of_object: list[RawDocument] = []
    for document in raw:
        obj, document_problems = validate_document(document)
        problems.extend(document_problems)
        if obj is not None:
            objects.append(obj)
            raw_of_object.append(document)
    lines = tuple(document.start.line for document in raw_of_object)
    return ParsedFile(source, tuple(objects), lines, tuple(problems), tuple(raw_of_object))


class NotRead:
    """The type of `NOT_READ`: the plain documents of a file were not read beforehand."""


NOT_READ = NotRead()


def parse_policy_file(
    source: SourceFile, *, plain: list[RawDocument] | NotRead | None = NOT_READ
) -> ParsedFile:
    """A policy file's objects and problems, exactly as `parse_reference` finds them.

    Small, plain files are read with libyaml first (`documents.parse_plain`, about ten times
    faster); anything unusual, and any file with a problem, goes through `parse_reference`,
    which records the position of every field and guards against hostile input. Raises
    nothing: every failure is a Problem. `plain`: `parse_plain(source.path, source.data)`
    when the caller already has it (read in a worker process: `sources.parseahead`).
    """
    return _parse_plain(source, plain) or parse_reference(source)


def _parse_plain(
    source: SourceFile, plain: list[RawDocument] | NotRead | None
) -> ParsedFile | None:
    if isinstance(plain, NotRead):
        plain = None if source.data is None else parse_plain(source.path, source.data)
    raw = plain
    if raw is None:
        return None
    objects: list[Document] = []
    for document in raw:
        obj, problems = validate_document(document)
        if obj is None or problems:
            return None
        objects.append(obj)
    lines = tuple(document.start.line for document in raw)
    return ParsedFile(source, tuple(objects), lines, ())


def load_policy(
    files: Iterable[SourceFile],
    *,
    revision: str | None,
    parse: Callable[[SourceFile], ParsedFile] = parse_reference,
) -> LoadResult:
    """Parse, validate and cross-check a set of policy files.

    `parse` reads one file (`parse_reference`, or a cache of `parse_policy_file` shared with
    the audit trail, so that a pass parses each file once).
    """
    return load_parsed([parse(source) for source in files], revision=revision)


def load_parsed(parsed: Iterable[ParsedFile], *, revision: str | None) -> LoadResult:
    """Parsed files, cross-checked: every problem in reading order, the state when valid."""
    ordered = sorted(parsed, key=lambda f: f.path)
    problems = [problem for file in ordered for problem in file.problems]
    owners = [(file, index) for file in ordered for index in range(len(file.objects))]
    objects = [file.objects[index] for file, index in owners]
    raw_cache: dict[str, tuple[RawDocument, ...]] = {}

    def raw_of(position: int) -> RawDocument:
        # A fast-parsed file keeps no field positions: parse it again to locate a finding.
        file, index = owners[position]
        if file.path not in raw_cache:
            raw = file.raw if file.raw is not None else parse_reference(file.source).raw
            raw_cache[file.path] = raw or ()
        return raw_cache[file.path][index]

    problems.extend(finding_problems(references.detect_findings(objects), raw_of))
    problems.sort(key=reading_order)
    if any(not p.warning for p in problems):
        return LoadResult(None, tuple(problems))
    return LoadResult(state_of({f.path: f for f in ordered}, revision), tuple(problems))


def state_of(files: Mapping[str, ParsedFile], revision: str | None) -> DesiredState:
    """Parsed files by path as a DesiredState, objects in path order, then document order."""
    objects: list[Document] = []
    origins: dict[ObjectKey, Origin] = {}
    for path in sorted(files):
        parsed = files[path]
        objects.extend(parsed.objects)
        for obj, line in zip(parsed.objects, parsed.lines, strict=True):
            origins[obj.key] = Origin(parsed.path, line)
    return DesiredState(revision=revision, objects=tuple(objects), origins=origins)


def refusal_problem(source: SourceFile) -> Problem:
    """Why a source file was refused (or, `ignored`, left out with a warning)."""
    return Problem(source.path, None, "", source.refusal or "file refused", warning=source.ignored)


def finding_problems(
    findings: Iterable[references.Finding], raw_of: Callable[[int], RawDocument]
) -> list[Problem]:
    """Cross-reference findings as located problems; `raw_of` maps an object index to its
    document (the second object of a duplicate is named by where the first was defined)."""
    problems = []
    for finding in findings:
        document = raw_of(finding.index)
        message = finding.message
        if finding.related is not None:
            first = raw_of(finding.related)
            message += f"; first defined at {first.path}:{first.start.line}"
        problems.append(
            Problem(
                document.path,
                document.position_of(finding.field_path),
                format_field_path(finding.field_path),
                message,
                warning=finding.warning,
            )
        )
    return problems


def reading_order(problem: Problem) -> tuple[str, int, int]:
    position = problem.position
    return (problem.path, position.line if position else 0, position.column if position else 0)


def validate_document(document: RawDocument) -> tuple[Document | None, list[Problem]]:
    """One raw document → a policy object, or the problems that stop it.

    Raises nothing: a failure the models do not report as a validation error (a validator
    raising something else) becomes a Problem at the document's start rather than a traceback
    that would stop every command reading the repository.
    """
    try:
        return _validate_document(document)
    except Exception as exc:  # noqa: BLE001 - a bad document must never stop the loader
        return None, [
            Problem(
                document.path,
                document.start,
                "",
                f"cannot be validated ({type(exc).__name__}: {_exception_text(exc)})",
            )
        ]


def _exception_text(exc: Exception) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose message itself fails
        return "no message"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


def _validate_document(document: RawDocument) -> tuple[Document | None, list[Problem]]:
    data = document.data
    if not isinstance(data, dict):
        return None, [
            _problem(
                document,
                (),
                "a document must be a mapping with apiVersion, kind, metadata and spec",
            )
        ]
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        message = "required field is missing" if kind is None else f"{kind!r} is not one of {known}"
        return None, [_problem(document, ("kind",), message)]
    if data.get("apiVersion") != API_VERSION:
        got = data.get("apiVersion")
        message = "required field is missing" if got is None else f"{got!r} is not {API_VERSION}"
        return None, [_problem(document, ("apiVersion",), message)]
    try:
        return KINDS[kind].model_validate(data), []
    except pydantic.ValidationError as exc:
        return None, [
            _problem(document, tuple(error["loc"]), describe_error(error))
            for error in independent_errors(exc.errors(include_url=False))
        ]


def describe_error(error: Any) -> str:  # noqa: PLR0911 - one return per error type, as a table
    """A pydantic error as a sentence about the value the user wrote."""
    kind = error["type"]
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in {"enum", "literal_error"}:
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{given!r} is not one of {expected}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s)"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        return f"{given!r} {pattern_meaning(str(ctx.get('pattern')))}"
    message = str(error["msg"])
    if given is not None and not isinstance(given, dict | list):
        return f"{message[0].lower()}{message[1:]} (got {given!r})"
    return message[0].lower() + message[1:]


def _problem(document: RawDocument, field_path: tuple[Any, ...], message: str) -> Problem:
    path = tuple(part for part in field_path if isinstance(part, str | int))
    return Problem(document.path, document.position_of(path), format_field_path(path), message)
