"""YAML files → raw documents with the source position of every field.

Hostile input is refused here, before anything is built from it: files over a size limit,
non-UTF-8 bytes, tags that would construct Python objects (only the safe loader is used),
alias bombs (a budget on the expanded node count) and nesting deep enough to exhaust the stack.

What a reviewer reads must be what runs, so the YAML constructs whose loaded value differs from
the text shown in review are refused: a key written twice (only one would apply), merge keys
`<<` (fields copied from elsewhere), `!!binary` (base64 text that loads as other bytes),
integers with a leading zero (YAML 1.1 reads `010` as 8), sexagesimal numbers (`1:30` is 90)
(all in `StrictConstructor`), and invisible or text-direction characters (a zero-width space
after a patch id, a right-to-left override). Every other failure of a value's constructor (an
impossible date such as `2027-02-30`, an integer too long to convert, ...) becomes a Problem at
the value, never an exception: `parse_file` raises nothing for any input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from controller import errors

MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000
SHOWN_VALUE_CHARS = 60  # a refused value is quoted up to this length in a message

MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG_NAMES = {
    "tag:yaml.org,2002:timestamp": "a date or timestamp",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
}
# YAML 1.1 integers that read differently from their decimal look: `010` (octal 8), `0_7`, and
# base 60 `1:30` (90); the same base 60 form for floats (`1:30.5`).
_LEADING_ZERO_INT = re.compile(r"[-+]?0[0-9_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True, slots=True)
class Problem:
    """An error or warning a person can act on: where, which field, what is wrong."""

    path: str
    position: Position | None
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = self.path
        if self.position is not None:
            where += f":{self.position.line}:{self.position.column}"
        prefix = "warning: " if self.warning else ""
        if self.field:
            return f"{where}: {prefix}{self.field}: {self.message}"
        return f"{where}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One YAML document of a file, with the position of every mapping key and sequence item."""

    path: str
    index: int  # 0-based position of the document in its file
    data: Any
    positions: dict[FieldPath, Position] = field(hash=False, compare=False)

    @property
    def start(self) -> Position:
        return self.positions.get((), Position(1, 1))

    def position_of(self, field_path: FieldPath) -> Position:
        """The position of the deepest part of `field_path` that exists in the file."""
        for end in range(len(field_path), -1, -1):
            found = self.positions.get(field_path[:end])
            if found is not None:
                return found
        return self.start


def format_field_path(field_path: FieldPath) -> str:
    """`('spec', 'rules', 0, 'severities', 1)` → `spec.rules[0].severities[1]`."""
    out = ""
    for part in field_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _BudgetExceededError(Exception):
    pass


# Characters a review tool may not show, or that reorder what it shows (Trojan Source,
# CVE-2021-42574): `KB5011048<U+200B>` reads as the excluded patch and is another id. A byte
# order mark is allowed as the file's first character only, where YAML expects it.
_HIDDEN = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def find_hidden_character(text: str) -> int | None:
    """The offset of the first invisible or text-direction character (a leading BOM aside)."""
    found = _HIDDEN.search(text, 1 if text.startswith("\ufeff") else 0)
    return None if found is None else found.start()


def hidden_character_problem(path: str, text: str, offset: int) -> Problem:
    """The error for the character at `offset` of `text` (from `find_hidden_character`)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Problem(
        path,
        Position(line, column),
        "",
        f"invisible or text-direction character U+{ord(text[offset]):04X}: what a reviewer "
        "reads could differ from what runs; remove it (or, in a quoted string, write it as "
        "an escape such as \\u200b)",
    )


class NodeError(errors.NeedsHumanError):
    """A value the policy may not hold, at a node of the composed document.

    `field_path` is filled in by the parser, which knows where each node sits.
    """

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
        self.field_path: FieldPath = ()


def _shown(value: object) -> str:
    """`value` quoted for a message, shortened; safe for integers too long to print."""
    try:
        text = str(value)
    except ValueError:  # an int beyond Python's digit limit for decimal conversion
        return "a number too long to print"
    return repr(value) if len(text) <= SHOWN_VALUE_CHARS else repr(f"{text[:SHOWN_VALUE_CHARS]}...")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class StrictConstructor(yaml.constructor.SafeConstructor):
    """The safe constructor, refusing what reads one way in review and loads another.

    Used by every loader of policy files (`parse_file` and the history's fast path) so that
    they accept exactly the same documents. Raises `NodeError` at the first refusal (or
    PyYAML's own `MarkedYAMLError`); never any other exception. With `refusals` a list (what
    `parse_file` sets), it records every refusal there instead and goes on with a stand-in
    value (the first of a duplicate key's values, the number as YAML reads it, None for a
    value it cannot build), so that a file's every mistake is reported at once, not one per
    edit; a document with any refusal is never used.
    """

    refusals: list[NodeError] | None = None  # None: raise at the first refusal

    def refuse(self, node: yaml.Node, message: str) -> None:
        """Refuse `node`: raise, or record it when collecting (`refusals`)."""
        if self.refusals is None:
            raise NodeError(node, message)
        self.refusals.append(NodeError(node, message))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        deep_before = self.deep_construct
        try:
            return super().construct_object(node, deep=deep)
        except (NodeError, yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # noqa: BLE001 - any constructor failure is the value's fault
            self.refuse(node, _construction_message(node, exc))
        # collecting: what the failed construction left half done is undone, and the node
        # stands for None (an alias to it is not built, nor reported, twice)
        self.recursive_objects.pop(node, None)
        self.deep_construct = deep_before
        self.constructed_objects[node] = None
        return None

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                self.refuse(
                    key_node,
                    f"merge keys (`<<`) are not allowed: the key at line {_line(key_node)} "
                    f"copies fields from line {_line(value_node)}, which a reviewer may not "
                    "see; write the fields out",
                )
        node.value = [(key, value) for key, value in node.value if key.tag != MERGE_TAG]
        super().flatten_mapping(node)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            self.refuse(node, f"expected a mapping, found {type(node).__name__}")
            return {}
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        first_key: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            refused_before = len(self.refusals or ())
            key = self.construct_object(key_node, deep=deep)
            if len(self.refusals or ()) > refused_before:  # no key to compare: its own error
                self.construct_object(value_node, deep=deep)
                continue
            try:
                first = first_key.get(key)
            except TypeError:
                self.refuse(key_node, "a key must be a plain value, not a list or a mapping")
                continue
            if first is not None:
                self.refuse(
                    key_node,
                    f"duplicate key {_shown(key)}: written at line {_line(first)} and again at "
                    f"line {_line(key_node)}; only one of them would apply",
                )
                self.construct_object(value_node, deep=deep)  # its own mistakes are reported
                continue
            first_key[key] = key_node
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(node.value)
        value: int = super().construct_yaml_int(node)
        if _LEADING_ZERO_INT.fullmatch(text) or _SEXAGESIMAL.fullmatch(text):
            self.refuse(node, _ambiguous_number(node, value))
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if _SEXAGESIMAL.fullmatch(str(node.value)):
            self.refuse(node, _ambiguous_number(node, value))
        return value

    def construct_yaml_binary(self, node: yaml.ScalarNode) -> bytes:
        self.refuse(node, "binary values (`!!binary`) are not allowed: write the text itself")
        return b""

    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **yaml.constructor.SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:int": construct_yaml_int,
        "tag:yaml.org,2002:float": construct_yaml_float,
        "tag:yaml.org,2002:binary": construct_yaml_binary,
    }


def _ambiguous_number(node: yaml.ScalarNode, value: object) -> str:
    return (
        f"{_shown(node.value)} is read by YAML as {_shown(value)}, not as written; "
        "write the number without leading zeros or colons, or quote it as text"
    )


def _construction_message(node: yaml.Node, exc: Exception) -> str:
    if isinstance(node, yaml.ScalarNode):
        what = _TAG_NAMES.get(node.tag, f"a value tagged {node.tag}")
        return f"{_shown(node.value)} is not {what}: {exc}"
    return f"cannot be read: {type(exc).__name__}: {exc}"


class StrictLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    StrictConstructor,
    yaml.resolver.Resolver,
):
    """`yaml.SafeLoader` with `StrictConstructor`."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        StrictConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def parse_file(path: str, data: bytes) -> tuple[list[RawDocument], list[Problem]]:
    """Split a YAML file into documents; every refusal becomes a Problem naming the position."""
    if len(data) > MAX_FILE_BYTES:
        return [], [
            Problem(path, None, "", f"file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return [], [
            Problem(
                path,
                Position(line, column),
                "",
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            )
        ]
    hidden = find_hidden_character(text)
    if hidden is not None:
        return [], [hidden_character_problem(path, text, hidden)]
    refused: list[Problem] = []  # every refusal of every document read so far
    try:
        found = list(_documents(path, text, refused))
    except Exception as exc:  # noqa: BLE001 - `_stopped` knows each way a file stops a parser
        return [], _in_reading_order([*refused, _stopped(path, text, exc)])
    if refused:
        return [], _in_reading_order(refused)
    return found, []


def _stopped(path: str, text: str, exc: Exception) -> Problem:
    """The problem of a failure that stops reading the file (the refusals before it stand)."""
    if isinstance(exc, NodeError):
        return Problem(path, _position(exc.node), format_field_path(exc.field_path), exc.message)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else None
        message = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        return Problem(path, position, "", f"YAML error: {message}")
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML forbids: its offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(
            path,
            Position(line, column),
            "",
            f"YAML error: character U+{character:04X} is not allowed in YAML text",
        )
    if isinstance(exc, yaml.YAMLError):
        return Problem(path, None, "", f"YAML error: {exc}")
    if isinstance(exc, _BudgetExceededError):
        return Problem(
            path,
            None,
            "",
            f"a document expands to more than {MAX_EXPANDED_NODES} nodes "
            "(aliases multiplying content?)",
        )
    if isinstance(exc, RecursionError):
        return Problem(path, None, "", "YAML nesting is too deep")
    raise exc


def _in_reading_order(problems: list[Problem]) -> list[Problem]:
    """By line and column; a problem without a position (the whole file's) last."""
    return sorted(problems, key=_place)


def _place(problem: Problem) -> tuple[bool, int, int]:
    where = problem.position
    return (where is None, where.line if where else 0, where.column if where else 0)


def _documents(path: str, text: str, refused: list[Problem]) -> Iterator[RawDocument]:
    """The file's documents without a refusal; each refusal of any document goes to `refused`,
    located, and reading goes on (`StrictConstructor.refusals`)."""
    loader = StrictLoader(text)
    loader.refusals = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            walk = _NodeWalk()
            walk.record(node, ())
            try:
                data = loader.construct_document(node)
            except (yaml.YAMLError, RecursionError):
                raise
            except Exception as exc:  # noqa: BLE001 - whatever fails, the document is at fault
                error = NodeError(node, _construction_message(node, exc))
                raise error from None
            finally:  # the refusals found before an error that stops the file stand too
                had_refusals = _located(path, loader, walk, refused)
            if not had_refusals and data is not None:
                yield RawDocument(path, index, data, walk.positions)
            index += 1
    finally:
        loader.dispose()


def _located(path: str, loader: StrictLoader, walk: _NodeWalk, refused: list[Problem]) -> bool:
    """Move the loader's refusals of one document to `refused`, located by `walk`; whether
    there were any."""
    found = loader.refusals or []
    for refusal in found:
        where = format_field_path(walk.paths.get(id(refusal.node), ()))
        refused.append(Problem(path, _position(refusal.node), where, refusal.message))
    had = bool(found)
    found.clear()
    return had


class _NodeWalk:
    """The position of every field of a composed document, and the field path of every node."""

    def __init__(self) -> None:
        self.positions: dict[FieldPath, Position] = {}
        self.paths: dict[int, FieldPath] = {}  # id(node) -> where it first appears
        self.budget = MAX_EXPANDED_NODES

    def record(self, node: yaml.Node, here: FieldPath) -> None:
        """Walk the node graph, following aliases, charging each visit to the budget."""
        self.budget -= 1
        if self.budget < 0:
            raise _BudgetExceededError
        self.positions.setdefault(here, _position(node))
        self.paths.setdefault(id(node), here)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key_path = (*here, str(key_node.value))
                    self.positions.setdefault(key_path, _position(key_node))
                    self.paths.setdefault(id(key_node), key_path)
                    self.record(value_node, key_path)
                else:  # complex keys: still charged, positions of the parent
                    self.record(key_node, here)
                    self.record(value_node, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record(item, (*here, index))


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


# --- the fast path: plain files through libyaml ----------------------------------------------

_RESOLVED_MAX = 1 << 16


class _RememberingResolver(yaml.resolver.Resolver):
    """The safe loader's tag resolution, remembered per plain scalar.

    Same answers as `yaml.resolver.Resolver.resolve` when, as in the safe loaders, no path
    resolvers are registered: a plain scalar's tag depends only on its text (the implicit
    resolvers' regexes), a quoted scalar is a string, and sequences and mappings have their
    default tags. So only plain scalars are looked up, by their text alone, without re-running
    the regexes for the keys and values every policy file repeats.
    """

    _resolved: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # Called for every node of every file read: the common answer first, module-level
        # names only (no attribute lookups on the way).
        if kind is _SCALAR_NODE:
            if not implicit[0]:
                return _STR_TAG
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(_RESOLVED) < _RESOLVED_MAX and len(value) <= 64:
                    _RESOLVED[value] = tag
            return tag
        return _SEQ_TAG if kind is _SEQUENCE_NODE else _MAP_TAG

    # libyaml's composer calls these for every node; with no path resolvers registered there
    # is nothing to track, and C built-ins that ignore their result cost less than Python
    # methods: `slice(node, index)` and `tuple()` build throw-away values.
    descend_resolver = staticmethod(slice)  # type: ignore[assignment]
    ascend_resolver = staticmethod(tuple)  # type: ignore[assignment]


_RESOLVED = _RememberingResolver._resolved  # noqa: SLF001 - the class's memo, by a short name
_SCALAR_NODE = yaml.ScalarNode
_SEQUENCE_NODE = yaml.SequenceNode

_FAST_LOADER: Any = None
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(CParser, StrictConstructor, _RememberingResolver):
        """`yaml.CSafeLoader` with the strict constructor and the remembering resolver."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            StrictConstructor.__init__(self)
            _RememberingResolver.__init__(self)

    _FAST_LOADER = _FastLoader

# libyaml's composer recurses in C without a depth limit (tens of thousands of nested levels
# crash the process), so it only sees small files with few nesting indicators; the rest, and
# anything with anchors (alias bombs), goes to the loader's own budgeted parser.
FAST_PARSE_MAX_BYTES = 64 * 1024
_CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")
FAST_PARSE_MAX_INDICATORS = 1000


def parse_plain(path: str, data: bytes) -> list[RawDocument] | None:
    """A plain file's documents read with libyaml (about ten times faster than `parse_file`),
    or None when the file is left to `parse_file`: libyaml missing, a large file, anchors,
    tabs or control characters, deep nesting, hidden characters, or anything the strict
    constructor refuses (duplicate keys included), so both accept exactly the same files.

    Each document carries only its start position; raises nothing.
    """
    if (
        _FAST_LOADER is None
        or len(data) > FAST_PARSE_MAX_BYTES
        or b"&" in data  # anchors (and so aliases): left to the parser that budgets them
        # libyaml and PyYAML's scanner disagree on tabs and control characters (libyaml takes
        # `key: <tab>` as null, PyYAML refuses it): only the reference parser decides those.
        or _CONTROL_BYTES.search(data) is not None
        or (
            # Indicators do not overlap, so a file no longer than the limit cannot pass it.
            len(data) > FAST_PARSE_MAX_INDICATORS
            and sum(data.count(mark) for mark in (b"[", b"{", b"- ", b"? "))
            > FAST_PARSE_MAX_INDICATORS
        )
    ):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if find_hidden_character(text) is not None:
        return None
    found: list[RawDocument] = []
    loader = _FAST_LOADER(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                value = _construct_plain(node, loader)
            except _NotPlainError:
                value = loader.construct_document(node)
            if value is not None:
                start = Position(node.start_mark.line + 1, node.start_mark.column + 1)
                found.append(RawDocument(path, index, value, {(): start}))
            index += 1
    except Exception:  # noqa: BLE001 - any failure: the reference parser locates and reports it
        return None
    finally:
        loader.dispose()
    return found


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")
)


class _NotPlainError(Exception):
    """The document uses a YAML feature (merge keys, other tags) left to PyYAML's constructor."""


def _construct_plain(node: yaml.Node, loader: Any) -> Any:
    """The Python value of a plain document: strings, numbers, booleans, dates, lists, maps.

    What PyYAML's SafeConstructor builds for these, without its generic machinery (several
    times faster); scalars other than strings are still built by the loader's constructors.
    """
    tag = node.tag
    if tag == _STR_TAG:
        return node.value
    if tag == _MAP_TAG:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STR_TAG:
                key = key_node.value
            elif key_node.tag in _SCALAR_TAGS:
                key = loader.construct_object(key_node)
            else:
                raise _NotPlainError
            if key in mapping:  # a duplicate key: the reference parser names both lines
                raise _NotPlainError
            mapping[key] = _construct_plain(value_node, loader)
        return mapping
    if tag == _SEQ_TAG:
        return [_construct_plain(item, loader) for item in node.value]
    if tag in _SCALAR_TAGS:
        return _construct_scalar(node, loader)
    raise _NotPlainError


# Plain scalars other than strings, as constructed before: the same text with the same tag
# always builds the same immutable value (None, a bool, a number, a date or a timestamp), and
# policy files repeat them (dates, counts, booleans). Failures are not remembered: they raise.
_SCALARS: dict[tuple[str, str], Any] = {}


def _construct_scalar(node: yaml.Node, loader: Any) -> Any:
    key = (node.tag, node.value)
    if key in _SCALARS:
        return _SCALARS[key]
    value = loader.construct_object(node)
    if len(_SCALARS) < _RESOLVED_MAX and len(node.value) <= 64:
        _SCALARS[key] = value
    return value
