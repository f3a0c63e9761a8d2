"""Naming and fetching the revisions a pull request compares.

A plan compares two revisions that often are not branches of the policy repository: a forge's
pull-request head (`refs/pull/42/head` on GitHub and Gitea/Forgejo, `refs/merge-requests/7/head`
on GitLab), a commit id handed over by CI, or a remote-tracking branch (`origin/main`). Two jobs
live here:

- `label`: the name a revision is shown under, from the ref it was given as (`pr-42`, `mr-7`,
  `bob/openssl`, `main`), so that a PR head is never printed as `main@sha1:…`.
- `checked_ref` and `fetch`: text from a request becomes a git argument only after a strict
  check (a branch name, a forge PR ref, or a commit id; never anything starting with `-`), and
  it is passed after `--end-of-options`, so it can never be read as an option.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

import git

from controller.sources.git import SourceError

if TYPE_CHECKING:
    from collections.abc import Iterable

# GitHub and Gitea/Forgejo publish every PR as refs/pull/N/head; GitLab as
# refs/merge-requests/N/head. `merge` is GitHub's test-merge commit. Remote-tracking copies
# (`refs/remotes/origin/pull/N/head`, actions/checkout's `refs/remotes/pull/N/merge`) count too.
_FORGE_REF = re.compile(
    r"^(?:refs/)?(?:remotes/(?:[\w.-]+/)?)?(?P<kind>pull|merge-requests)/(?P<number>[0-9]{1,9})"
    r"/(?:head|merge)$"
)
_FETCHABLE_FORGE_REF = re.compile(r"^refs/(pull|merge-requests)/[0-9]{1,9}/(head|merge)$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{7,40}$")
# A conservative subset of git-check-ref-format: what branch names look like in practice.
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
_LABEL_PREFIX = {"pull": "pr", "merge-requests": "mr"}
MAX_REF_LENGTH = 200
# One fetch at a time into the service's clone (the plan API, the forge's plans): concurrent
# fetches fight over ref locks.
FETCH_LOCK = threading.Lock()


class MissingRefError(SourceError):
    """The remote does not have the ref asked for."""


def label(repo: git.Repo, rev: str, sha: str) -> str:
    """The name `rev` (as given, resolving to commit `sha`) is shown under.

    `refs/pull/42/head` → `pr-42`, `refs/merge-requests/7/head` → `mr-7`, `refs/heads/x` or a
    local branch `x` → `x`, `origin/main` → `main`, a tag → the tag. A commit id, `HEAD` or any
    other expression is named after a ref whose tip is exactly `sha` (PR refs first, then local
    branches, then remote-tracking branches; HEAD's own branch when it points there), else
    after a local branch whose history holds it (the checked-out one first), and `detached`
    when none does.
    """
    named = _name_of_ref(repo, rev)
    if named is not None:
        return named
    if rev == "HEAD":
        try:
            branch = repo.head.reference.name
        except TypeError:  # detached HEAD
            branch = None
        if branch is not None:
            return str(branch)
    tips = _names_at(repo.refs, sha)
    if tips:
        return tips[0]
    return _branch_containing(repo, sha) or "detached"


def _branch_containing(repo: git.Repo, sha: str) -> str | None:
    """The checked-out branch, else the first local branch by name, whose history has `sha`."""
    try:
        current = [repo.head.reference] if not repo.head.is_detached else []
    except TypeError:
        current = []
    commit = repo.commit(sha)
    for head in [*current, *sorted(repo.heads, key=lambda h: h.name)]:
        try:
            if repo.is_ancestor(commit, head.commit):
                return str(head.name)
        except (git.GitCommandError, ValueError):
            continue
    return None


def _name_of_ref(repo: git.Repo, rev: str) -> str | None:
    forge = _FORGE_REF.match(rev)
    if forge is not None:
        return f"{_LABEL_PREFIX[forge['kind']]}-{int(forge['number'])}"
    for prefix in ("refs/heads/", "refs/tags/"):
        if rev.startswith(prefix):
            return rev.removeprefix(prefix)
    if rev.startswith("refs/remotes/"):
        return rev.removeprefix("refs/remotes/").split("/", 1)[-1]
    if rev in {head.name for head in repo.heads} or rev in {tag.name for tag in repo.tags}:
        return rev
    for remote in repo.remotes:
        if rev.startswith(f"{remote.name}/") and rev in {r.name for r in remote.refs}:
            return rev.removeprefix(f"{remote.name}/")
    return None


def _names_at(refs: Iterable[git.Reference], sha: str) -> list[str]:
    """Names of the refs whose tip is `sha`, most specific first."""
    ranked: list[tuple[int, str]] = []
    for ref in refs:
        path = str(ref.path)
        if path.endswith("/HEAD"):
            continue
        try:
            tip = ref.commit.hexsha
        except (ValueError, git.BadName, TypeError):  # a ref to a tree or a blob
            continue
        if tip != sha:
            continue
        forge = _FORGE_REF.match(path)
        if forge is not None:
            ranked.append((0, f"{_LABEL_PREFIX[forge['kind']]}-{int(forge['number'])}"))
        elif path.startswith("refs/heads/"):
            ranked.append((1, path.removeprefix("refs/heads/")))
        elif path.startswith("refs/remotes/"):
            ranked.append((2, path.removeprefix("refs/remotes/").split("/", 1)[-1]))
    return [name for _, name in sorted(ranked)]


def checked_ref(text: str, *, field: str) -> str:
    """`text` when it is a branch name, a forge PR ref or a commit id; SourceError otherwise.

    The rule, for text that arrives over HTTP: a full forge ref (`refs/pull/N/head`,
    `refs/pull/N/merge`, `refs/merge-requests/N/head`), a 7-40 digit lowercase hex commit id,
    or a branch name of letters, digits and `._/+-` (at most 200 characters) that does not start
    with `-`, `.` or `refs/`, and has no `..`, `//`, `@{`, trailing `/` or `.`, or component
    starting with `.` or ending in `.lock`.
    The message names `field`.
    """
    if _FETCHABLE_FORGE_REF.match(text) or _COMMIT_ID.match(text):
        return text
    if (
        _BRANCH.match(text)
        and not text.startswith("refs/")  # full refs: only the forge PR refs above
        and ".." not in text
        and "//" not in text
        and not text.endswith(("/", "."))
        and not any(part.endswith(".lock") or part.startswith(".") for part in text.split("/"))
    ):
        return text
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise SourceError(
        f"{field}: {shown!r} is not a branch name, a pull request ref (refs/pull/N/head, "
        "refs/merge-requests/N/head) or a commit id"
    )


def fetch(repo: git.Repo, refs: Iterable[str]) -> None:
    """Fetch forge PR refs and branches (checked with `checked_ref`) from `origin` into `repo`.

    Commit ids are not fetched by name (forges refuse unadvertised objects); they must be
    reachable from a fetched ref. SourceError names the ref when the remote does not have it.
    """
    for ref in dict.fromkeys(refs):
        if _COMMIT_ID.match(ref):
            continue
        if _FETCHABLE_FORGE_REF.match(ref):
            refspec = f"+{ref}:{ref}"
        elif ref.startswith("refs/"):
            raise SourceError(f"{ref!r} is not a ref this service fetches")
        else:
            refspec = f"+refs/heads/{ref}:refs/heads/{ref}"
        try:
            repo.git.fetch("--no-tags", "--end-of-options", "origin", refspec)
        except git.GitCommandError as exc:
            # git's own message may quote the remote URL (and its credentials): not repeated.
            if "couldn't find remote ref" in str(exc.stderr):
                raise MissingRefError(f"the policy repository has no ref {ref!r}") from None
            raise SourceError(f"cannot fetch {ref!r} from the policy repository") from None
