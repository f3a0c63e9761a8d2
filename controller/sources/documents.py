"""YAML files → raw documents with the source position of every field.

Hostile input is refused here, before anything is built from it: files over a size limit,
non-UTF-8 bytes, tags that would construct Python objects (only the safe loader is used),
alias bombs (a budget on the expanded node count) and nesting deep enough to exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000

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


def parse_file(path: str, data: bytes) -> tuple[list[RawDocument], list[Problem]]:  # noqa: PLR0911
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
    try:
        return list(_documents(path, text)), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else None
        message = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        return [], [Problem(path, position, "", f"YAML error: {message}")]
    except yaml.YAMLError as exc:
        return [], [Problem(path, None, "", f"YAML error: {exc}")]
    except _BudgetExceededError:
        return [], [
            Problem(
                path,
                None,
                "",
                f"a document expands to more than {MAX_EXPANDED_NODES} nodes "
                "(aliases multiplying content?)",
            )
        ]
    except RecursionError:
        return [], [Problem(path, None, "", "YAML nesting is too deep")]


def _documents(path: str, text: str) -> Iterator[RawDocument]:
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            positions: dict[FieldPath, Position] = {}
            _record_positions(node, (), positions, budget=[MAX_EXPANDED_NODES])
            data = loader.construct_document(node)
            if data is not None:
                yield RawDocument(path, index, data, positions)
            index += 1
    finally:
        loader.dispose()


def _record_positions(
    node: yaml.Node, here: FieldPath, positions: dict[FieldPath, Position], budget: list[int]
) -> None:
    """Walk the composed node graph, following aliases, charging each visit to the budget."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _BudgetExceededError
    positions.setdefault(here, _position(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key_path = (*here, str(key_node.value))
                positions.setdefault(key_path, _position(key_node))
                _record_positions(value_node, key_path, positions, budget)
            else:  # merge keys and complex keys: still charged, positions of the parent
                _record_positions(value_node, here, positions, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*here, index), positions, budget)


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)
