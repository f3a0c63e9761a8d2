"""Policy revisions as patchctl writes them: `<ref>@sha1:<40 hex>` (`main@sha1:3f1c…`,
`pr-42@sha1:…`): the branch or forge ref a commit was read from, and the commit.

One home for reading and shortening them, so no module splits the text by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

MARKER = "@sha1:"
SHORT_SHA = 12


@dataclass(frozen=True, slots=True)
class Revision:
    """A commit on a ref; `str()` writes `ref@sha1:sha`."""

    branch: str
    sha: str

    def __str__(self) -> str:
        return format_revision(self.branch, self.sha)

    @classmethod
    def parse(cls, text: str | None) -> Revision | None:
        """The revision written in `text`, or None when it is empty or not `ref@sha1:sha`
        (the sha is the part after the last marker: a ref name may contain `@`)."""
        if not text:
            return None
        branch, marker, sha = text.rpartition(MARKER)
        return cls(branch, sha) if marker and branch and sha else None

    def short(self, *, marker: bool = False) -> str:
        """`main@3f1c5e2a9b0d` (or `main@sha1:3f1c5e2a9b0d` with `marker`), for people."""
        return f"{self.branch}{MARKER if marker else '@'}{self.sha[:SHORT_SHA]}"


def format_revision(branch: str, sha: str) -> str:
    """`branch@sha1:sha`."""
    return f"{branch}{MARKER}{sha}"
