"""Pull-request webhook payloads as `PullRequest` values. Purely computational.

The shapes are the forges' documented webhook payloads:

- GitHub `X-GitHub-Event: pull_request` and Gitea/Forgejo `X-Gitea-Event: pull_request`:
  `{"action", "number", "pull_request": {"number", "head": {"sha", "ref"}, "base": {"ref"}},
  "repository": {"full_name"}}`; GitHub says `synchronize` for a push, Gitea `synchronized`.
- GitLab `X-Gitlab-Event: Merge Request Hook`: `{"object_kind": "merge_request", "project":
  {"id", "path_with_namespace"}, "object_attributes": {"iid", "action", "last_commit": {"id"},
  "source_branch", "target_branch"}}`.

Only events that put a new head in front of reviewers count (opened, pushed to, reopened);
closing, merging, labelling and the like plan nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GITHUB_ACTIONS = frozenset({"opened", "synchronize", "synchronized", "reopened"})
GITLAB_ACTIONS = frozenset({"open", "reopen", "update"})
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull (merge) request head to plan: its number (GitLab: the `iid`), the head commit,
    the head and base branch names, and the repository the forge says it belongs to
    (`owner/name`, GitLab: `group/project`)."""

    number: int
    head_sha: str
    head_branch: str
    base_branch: str
    repository: str
    gitlab: bool = False  # a GitLab merge request (numbered by its iid)

    @property
    def label(self) -> str:
        """How messages name it: `pr-42` (GitHub, Gitea) or `mr-7` (GitLab)."""
        return f"{'mr' if self.gitlab else 'pr'}-{self.number}"

    @property
    def forge_ref(self) -> str:
        """The ref the forge publishes the head under (`refs/pull/N/head`,
        `refs/merge-requests/N/head`)."""
        kind = "merge-requests" if self.gitlab else "pull"
        return f"refs/{kind}/{self.number}/head"


def pull_request(headers: Mapping[str, str], body: bytes) -> PullRequest | None:
    """The pull request a verified webhook call announces, or None when it announces none
    (a push, a ping, a closed PR, a body that is not the documented shape). `headers` have
    lower-case names."""
    event = (
        headers.get("x-gitea-event")
        or headers.get("x-forgejo-event")
        or headers.get("x-github-event")
        or headers.get("x-gitlab-event")
        or ""
    )
    if event not in {"pull_request", "Merge Request Hook"}:
        return None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    if event == "Merge Request Hook":
        return _gitlab(payload)
    return _github(payload)


def _github(payload: Mapping[str, Any]) -> PullRequest | None:
    if payload.get("action") not in GITHUB_ACTIONS:
        return None
    pr = _mapping(payload.get("pull_request"))
    number = pr.get("number", payload.get("number"))
    head, base = _mapping(pr.get("head")), _mapping(pr.get("base"))
    return _checked(
        number=number,
        sha=head.get("sha"),
        head=head.get("ref"),
        base=base.get("ref"),
        repository=_mapping(payload.get("repository")).get("full_name"),
        gitlab=False,
    )


def _gitlab(payload: Mapping[str, Any]) -> PullRequest | None:
    attributes = _mapping(payload.get("object_attributes"))
    if payload.get("object_kind") != "merge_request":
        return None
    if attributes.get("action") not in GITLAB_ACTIONS:
        return None
    project = _mapping(payload.get("project"))
    return _checked(
        number=attributes.get("iid"),
        sha=_mapping(attributes.get("last_commit")).get("id"),
        head=attributes.get("source_branch"),
        base=attributes.get("target_branch"),
        repository=project.get("path_with_namespace"),
        gitlab=True,
    )


def _checked(
    *, number: Any, sha: Any, head: Any, base: Any, repository: Any, gitlab: bool
) -> PullRequest | None:
    """The values, when each has the documented type; the branch names become git arguments
    later, so they pass the same strict check as refs from any request."""
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 10**9:
        return None
    if not (isinstance(sha, str) and _SHA.match(sha)):
        return None
    for branch in (head, base):
        if not (isinstance(branch, str) and _BRANCH.match(branch) and ".." not in branch):
            return None
    if not isinstance(repository, str) or not repository:
        return None
    return PullRequest(number, sha, head, base, repository, gitlab=gitlab)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
