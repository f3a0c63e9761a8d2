"""`controller.jsontext`: a JSON object naming a member twice is found, with the member's path
and where its second name starts (what an operator needs to fix the sender)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.jsontext import duplicate_key


@pytest.mark.parametrize(
    ("text", "location", "line", "column"),
    [
        pytest.param('{"a": 1, "a": 2}', ("a",), 1, 10, id="top-level"),
        pytest.param('{"a": {"b": [1, {"c": 1, "c": 2}]}}', ("a", "b", 1, "c"), 1, 26, id="nested"),
        pytest.param('{"a\\"b" : 1 ,\n  "a\\"b"\n :\n 2}', ('a"b',), 2, 3, id="escaped-quote"),
        pytest.param('{"a\\\\": 1, "a\\\\": 2}', ("a\\",), 1, 12, id="escaped-backslash"),
        pytest.param('{"ééé": 1, "x": 1,\t"x"  :  2}', ("x",), 1, 20, id="non-ascii-before"),
        # the inner repetition comes first in the text, though its object is deeper
        pytest.param('{"o": {"i": 1, "i": 2}, "o": 3}', ("o", "i"), 1, 16, id="first-in-text"),
    ],
)
def test_the_repeated_member_is_named_and_located(
    text: str, location: tuple[object, ...], line: int, column: int
) -> None:
    found = duplicate_key(text.encode())
    assert found is not None
    assert (location, line, column) == (found.location, found.line, found.column)
    assert f"at line {line}, column {column}" in str(found)


@pytest.mark.parametrize(
    "text", ['{"a": 1, "b": {"a": 2}}', "[]", '"a"', '[{"a": 1}, {"a": 1}]', "[1,", "{"]
)
def test_unique_names_and_text_that_does_not_parse_are_none(text: str) -> None:
    """Names repeat across objects freely; text that is not JSON is its parser's to judge."""
    assert duplicate_key(text.encode()) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(value=JSON_VALUES, name=st.text(min_size=1, max_size=5))
def test_any_member_appended_again_is_found(value: object, name: str) -> None:
    """Whatever the document, a name appended again to the top object is found there, and
    the same document without it has none."""
    body = {"doc": value, name: 1}
    unique = json.dumps(body)
    assert duplicate_key(unique.encode()) is None
    repeated = unique[:-1] + f", {json.dumps(name)}: 2}}"
    found = duplicate_key(repeated.encode())
    assert found is not None
    assert ((name,), 1, len(unique) + 2) == (found.location, found.line, found.column)
