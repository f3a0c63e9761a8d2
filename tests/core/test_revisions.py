"""Revisions as patchctl writes them, read in one place (issue 12: one vocabulary)."""

from __future__ import annotations

import pytest

from controller.core.revisions import Revision

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"main@sha1:{SHA}", Revision("main", SHA), id="branch"),
        pytest.param(f"pr-42@sha1:{SHA}", Revision("pr-42", SHA), id="forge-ref"),
        pytest.param(f"user@host@sha1:{SHA}", Revision("user@host", SHA), id="at-in-ref"),
        pytest.param(SHA, None, id="bare-sha"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
        pytest.param("@sha1:abc", None, id="no-ref"),
        pytest.param("main@sha1:", None, id="no-sha"),
    ],
)
def test_parse(text: str | None, expected: Revision | None) -> None:
    """Only `ref@sha1:sha` is a revision; the sha follows the last marker."""
    assert expected == Revision.parse(text)


def test_written_parsed_and_shortened() -> None:
    """`str()` and `parse` round-trip; `short` keeps 12 hex digits, with or without the marker."""
    revision = Revision("main", SHA)
    assert revision == Revision.parse(str(revision))
    assert ("main@0123456789ab", "main@sha1:0123456789ab") == (
        revision.short(),
        revision.short(marker=True),
    )
