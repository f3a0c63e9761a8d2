"""JSON text read strictly: an object that names a member twice is refused.

RFC 8259 §4: "The names within an object SHOULD be unique"; when they are not, readers
disagree (Python's `json` and pydantic keep the last value, others the first, or fail), so
what a sender meant and what patchctl stores could differ: `{"facts": {...}, "facts": {...}}`
would keep the second silently. The policy loader refuses a YAML key written twice for the
same reason (`sources.documents`). The API's request bodies (`server.errors.parse_body`) and
the feeds' JSON (`feeds.common.load_json`) ask `duplicate_key` after their own parser accepted
the text.

jiter (pydantic's JSON parser, as a library) finds a repeated name while it parses, in Rust:
about 3 µs for a heartbeat and 0.4 ms for a 700-package inventory report on the bench machine,
a fraction of the validation that follows. Only a text that has one is read again, to name
the member's field path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jiter

# jiter's message: `Detected duplicate key "facts" at line 1 column 40`
_DETECTED = re.compile(r'duplicate key "(.*)" at line (\d+) column (\d+)', re.DOTALL)

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A member named a second time: `location` is its path (keys and array indexes, the
    member's own name last); `line` and `column` (1-based, in characters) where the second
    name starts."""

    location: Location
    line: int
    column: int

    @property
    def key(self) -> str:
        return str(self.location[-1])

    def __str__(self) -> str:
        return (
            f"duplicate key {self.key!r} (written again at line {self.line}, column "
            f"{self.column}): an object names it twice and only one value would be kept"
        )


def duplicate_key(data: bytes | str) -> DuplicateKey | None:
    """The first member (in text order) whose name its object already holds, in JSON text
    that parses; None when every object's names are unique (or the text does not parse:
    the caller's own parser has judged it)."""
    try:
        jiter.from_json(
            data.encode() if isinstance(data, str) else data,
            catch_duplicate_keys=True,
            cache_mode=False,
        )
    except ValueError as exc:
        found = _DETECTED.search(str(exc))
        if found is None:
            return None
        raw = data.encode() if isinstance(data, str) else data
        line, column = _name_start(raw, int(found.group(2)), int(found.group(3)))
        try:
            location = _first_repeated(json.loads(data, object_pairs_hook=_Members), ())
        except (ValueError, RecursionError):  # jiter accepts what `json` may not
            location = None
        return DuplicateKey(location or (found.group(1),), line, column)
    return None


def _name_start(data: bytes, line: int, column: int) -> tuple[int, int]:
    """Where the repeated name starts, from jiter's position (line, byte column: just past
    the colon after it): back over the colon and blanks, then to the string's unescaped
    opening quote (no unescaped quote lies inside a JSON string). jiter's own position when
    the text there is not a name and its colon."""
    at = sum(len(text) + 1 for text in data.split(b"\n", line - 1)[: line - 1]) + column - 2
    while at >= 0 and data[at] in b" \t\r\n":
        at -= 1
    if at < 1 or data[at] != ord(":"):
        return line, column
    at -= 1
    while at >= 0 and data[at] in b" \t\r\n":
        at -= 1
    if at < 1 or data[at] != ord('"'):
        return line, column
    at -= 1
    while at >= 0 and not (data[at] == ord('"') and _unescaped(data, at)):
        at -= 1
    if at < 0:
        return line, column
    line_start = data.rfind(b"\n", 0, at) + 1
    return data.count(b"\n", 0, at) + 1, len(data[line_start:at].decode("utf-8", "replace")) + 1


def _unescaped(data: bytes, at: int) -> bool:
    """Whether the character at `at` follows an even number of backslashes."""
    backslashes = 0
    while at - backslashes - 1 >= 0 and data[at - backslashes - 1] == ord("\\"):
        backslashes += 1
    return backslashes % 2 == 0


class _Members(list[tuple[str, Any]]):
    """An object's members in text order, as `json.loads` reads them with this hook."""


def _first_repeated(value: Any, here: Location) -> Location | None:
    """Members in text order: each name, then its value, so the first repeated name found is
    the first in the text."""
    if isinstance(value, _Members):
        seen: set[str] = set()
        for name, member in value:
            if name in seen:
                return (*here, name)
            seen.add(name)
            found = _first_repeated(member, (*here, name))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_repeated(item, (*here, index))
            if found is not None:
                return found
    return None
