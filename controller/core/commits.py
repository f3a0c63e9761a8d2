"""Commit facts: what the audit trail records about a commit, as values. Purely computational.

Who wrote and committed it, when, the pull/merge request it landed through (told by the
message a forge writes), its review trailers and its verified signature. Reading these from
git is `controller.sources.git`'s job (`iter_log`); judging them is `controller.core.access`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from controller.core.records import quick_init

_EMAIL_IN_ANGLES = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


# --- signatures ------------------------------------------------------------------------------


class SignatureStatus(StrEnum):
    """What git says about a commit's signature, against the trusted keys."""

    GOOD = "good"  # a valid signature by a trusted key
    BAD = "bad"  # the signature does not match the commit: tampered with
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown-key"  # signed, but not by a trusted key (or it cannot be checked)
    EXPIRED = "expired"  # a good signature by an expired key, or an expired signature
    REVOKED = "revoked"  # a good signature by a revoked key


@dataclass(frozen=True, slots=True)
class Signature:
    """A commit's signature as git verified it.

    `key` is the fingerprint of the signing key (`SHA256:...` for SSH, hex for GPG),
    `primary_key` the GPG primary key's fingerprint when a subkey signed, and `signer` the
    identity the trusted key stands for: the SSH principal from the allowed-signers line, or
    the GPG user id (`Name <email>`).
    """

    status: SignatureStatus
    key: str | None = None
    primary_key: str | None = None
    signer: str | None = None

    @property
    def is_good(self) -> bool:
        return self.status is SignatureStatus.GOOD

    @property
    def signer_email(self) -> str | None:
        """The signer as an email address: an SSH principal is one; a GPG uid holds one."""
        if self.signer is None:
            return None
        found = _EMAIL_IN_ANGLES.search(self.signer)
        if found:
            return found.group(1).lower()
        return self.signer.strip().lower() if "@" in self.signer else None

    def fingerprints(self) -> frozenset[str]:
        return frozenset(fp for fp in (self.key, self.primary_key) if fp)


UNSIGNED = Signature(SignatureStatus.UNSIGNED)


# --- people, trailers, pull requests -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A name and an email address, as git records them (emails compared lower-case)."""

    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Person | None:
        """`Name <email>` (a trailer value or a GPG user id) → Person; None when it has no email."""
        found = re.fullmatch(r"\s*(.*?)\s*<([^<>\s]+)>\s*", text)
        if found is None:
            return None
        return cls(found.group(1), found.group(2))

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class Trailer:
    """A `Key: value` line at the end of a commit message, as `git interpret-trailers` reads it."""

    key: str
    value: str

    @property
    def person(self) -> Person | None:
        return Person.parse(self.value)


REVIEW_TRAILERS = ("Reviewed-by", "Approved-by", "Co-authored-by")


class PullRequestStyle(StrEnum):
    """How a pull/merge request landed, told by the commit message a forge writes."""

    GITHUB_MERGE = "github-merge"  # "Merge pull request #12 from owner/branch"
    GITHUB_SQUASH = "github-squash"  # "Title (#12)"
    GITLAB = "gitlab"  # "See merge request group/project!34"
    GITEA = "gitea"  # "Merge pull request 'Title' (#12) from branch into main"
    BITBUCKET = "bitbucket"  # "Merged in branch (pull request #12)"
    AZURE_DEVOPS = "azure-devops"  # "Merged PR 12: Title"


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The pull/merge request a commit landed through; `ref` prints it as its forge does."""

    number: int
    style: PullRequestStyle
    project: str | None = None  # GitLab: the project path in "group/project!34"

    @property
    def ref(self) -> str:
        if self.style is PullRequestStyle.GITLAB:
            return f"{self.project or ''}!{self.number}"
        return f"#{self.number}"


# Tried in order; the first match wins. Squash ("(#12)" at the end of the subject) comes last
# because Gitea's merge subject contains the same pattern.
_PR_PATTERNS: tuple[tuple[PullRequestStyle, str, re.Pattern[str]], ...] = (
    (
        PullRequestStyle.GITHUB_MERGE,
        "subject",
        re.compile(r"^Merge pull request #(?P<number>\d+) from \S+"),
    ),
    (
        PullRequestStyle.GITEA,
        "subject",
        re.compile(r"^Merge pull request '.*' \(#(?P<number>\d+)\) from \S+ into \S+"),
    ),
    (
        PullRequestStyle.GITLAB,
        "message",
        re.compile(r"^See merge request (?P<project>\S+?)!(?P<number>\d+)\s*$", re.MULTILINE),
    ),
    (
        PullRequestStyle.BITBUCKET,
        "subject",
        re.compile(r"^Merged in \S+ \(pull request #(?P<number>\d+)\)"),
    ),
    (PullRequestStyle.AZURE_DEVOPS, "subject", re.compile(r"^Merged PR (?P<number>\d+):")),
    (PullRequestStyle.GITHUB_SQUASH, "subject", re.compile(r"\(#(?P<number>\d+)\)\s*$")),
)


_PR_HINT = re.compile(r"#\d|!\d|^Merged PR \d", re.MULTILINE)


def parse_pull_request(message: str) -> PullRequest | None:
    """The pull/merge request a commit message names, as GitHub, GitLab, Gitea, Bitbucket or
    Azure DevOps write it when they merge or squash one; None for an ordinary commit."""
    if _PR_HINT.search(message) is None:
        return None
    subject = message.split("\n", 1)[0].strip()
    for style, part, pattern in _PR_PATTERNS:
        found = pattern.search(subject if part == "subject" else message)
        if found is not None:
            project = found.groupdict().get("project")
            return PullRequest(int(found.group("number")), style, project)
    return None


def parse_trailers(text: str) -> tuple[Trailer, ...]:
    """Trailers as git prints them with `%(trailers:only,unfold,separator=%x1f)`."""
    found: list[Trailer] = []
    for line in text.replace("\n", "\x1f").split("\x1f"):
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            found.append(Trailer(key.strip(), value.strip()))
    return tuple(found)


# --- the facts of one commit ----------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class CommitFacts:
    """Everything the audit trail records about a commit.

    `merged_head_author` is, for a merge commit, the author of its second parent: the tip of
    the branch the pull request merged, i.e. the pull request's author as git recorded it.
    """

    sha: str
    parents: tuple[str, ...]
    author: Person
    committer: Person
    authored_at: datetime
    committed_at: datetime
    message: str
    pull_request: PullRequest | None
    trailers: tuple[Trailer, ...]
    signature: Signature
    merged_head_author: Person | None = None

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    def trailer_people(self, *keys: str) -> tuple[Person, ...]:
        """The people named by trailers with these keys (case-insensitive), in message order."""
        wanted = {key.lower() for key in keys}
        found = (t.person for t in self.trailers if t.key.lower() in wanted)
        return tuple(person for person in found if person is not None)

    def to_dict(self) -> dict[str, Any]:
        signature = self.signature
        return {
            "sha": self.sha,
            "parents": list(self.parents),
            "author": _person_dict(self.author),
            "committer": _person_dict(self.committer),
            "authoredAt": self.authored_at.isoformat(),
            "committedAt": self.committed_at.isoformat(),
            "subject": self.subject,
            "message": self.message,
            "pullRequest": None
            if self.pull_request is None
            else {
                "number": self.pull_request.number,
                "style": str(self.pull_request.style),
                "ref": self.pull_request.ref,
            },
            "trailers": [{"key": t.key, "value": t.value} for t in self.trailers],
            "signature": {
                "status": str(signature.status),
                "key": signature.key,
                "primaryKey": signature.primary_key,
                "signer": signature.signer,
            },
            "mergedHeadAuthor": _person_dict(self.merged_head_author),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CommitFacts:
        """The inverse of `to_dict`: facts read back from the store."""
        signature = data["signature"]
        merged = data.get("mergedHeadAuthor")
        return cls(
            sha=data["sha"],
            parents=tuple(data["parents"]),
            author=Person(**data["author"]),
            committer=Person(**data["committer"]),
            authored_at=datetime.fromisoformat(data["authoredAt"]),
            committed_at=datetime.fromisoformat(data["committedAt"]),
            message=data["message"],
            pull_request=parse_pull_request(data["message"]),
            trailers=tuple(Trailer(t["key"], t["value"]) for t in data["trailers"]),
            signature=Signature(
                SignatureStatus(signature["status"]),
                signature["key"],
                signature["primaryKey"],
                signature["signer"],
            ),
            merged_head_author=Person(**merged) if merged else None,
        )


def _person_dict(person: Person | None) -> dict[str, str] | None:
    return None if person is None else {"name": person.name, "email": person.email}
