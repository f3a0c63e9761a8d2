"""The native feed reads YAML with the policy loader's strict constructor (issue 17): a value YAML
cannot build is a located error, not a traceback, and duplicate or merge keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.feeds import FeedError, read_feed
from controller.kinds.feeds import FeedFormat

RECORD = """\
records:
  - id: X-1
    title: Example
    vendor: Example
    product: Example
    os: linux
    classification: security
    severity: critical
"""

CASES = [
    (
        "impossible-date",
        RECORD + "    released: 2027-02-30\n",
        "line 9, column 15",
        "'2027-02-30' is not a date or timestamp: day is out of range for month",
    ),
    (
        "duplicate-key",
        RECORD + "    severity: low\n",
        "line 9, column 5",
        "duplicate key 'severity': written at line 8 and again at line 9; "
        "only one of them would apply",
    ),
    (
        "merge-key",
        "base: &b {os: linux}\n" + RECORD.replace("    os: linux\n", "    <<: *b\n"),
        "line 7, column 5",
        "merge keys (`<<`) are not allowed: the key at line 7 copies fields from line 1, which "
        "a reviewer may not see; write the fields out",
    ),
    (
        "deep-nesting",
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "",
        "invalid YAML: nesting is too deep",
    ),
]


@pytest.mark.parametrize(
    ("text", "position", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_yaml_value_is_one_located_error(
    tmp_path: Path, text: str, position: str, message: str
) -> None:
    """The file is refused with one error at the value; nothing is imported from it."""
    (tmp_path / "feed.yaml").write_text(text, encoding="utf-8")
    result = read_feed(tmp_path / "feed.yaml", FeedFormat.NATIVE)
    assert ((), (FeedError(str(tmp_path / "feed.yaml"), position, message),)) == (
        result.records,
        result.errors,
    )


def test_an_unknown_tag_fails_its_record_only(tmp_path: Path) -> None:
    """A tag YAML has no constructor for is a located error of its record, not a traceback."""
    path = tmp_path / "feed.yaml"
    path.write_text("- id: !foo X-1\n- id: X-2\n", encoding="utf-8")
    result = read_feed(path, FeedFormat.NATIVE)
    message = "invalid YAML: could not determine a constructor for the tag '!foo'"
    assert (["X-2"], (FeedError(str(path), "line 1, column 7", message),), 1) == (
        [record.id for record in result.records],
        result.errors,
        result.failed,
    )
