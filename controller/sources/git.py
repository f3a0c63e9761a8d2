"""Policy files straight from git: a local repository or a URL, a branch, a revision.

Reading a commit's tree needs no checkout, so a PR's head can be validated next to main.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import git

from controller.redaction import redact_text, redact_url
from controller.sources.documents import MAX_FILE_BYTES
from controller.sources.loading import (
    SourceFile,
    ignored_submodule,
    is_policy_path,
    is_under_policy_dirs,
)

SYMLINK_MODE = 0o120000
_URL_RE = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")


class SourceError(Exception):
    """The repository, branch or revision cannot be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Revision:
    """A resolved commit on a branch, written `main@sha1:<sha>`."""

    branch: str
    sha: str

    def __str__(self) -> str:
        return format_revision(self.branch, self.sha)


def format_revision(branch: str, sha: str) -> str:
    return f"{branch}@sha1:{sha}"


def is_url(spec: str) -> bool:
    return bool(_URL_RE.match(spec))


def open_repository(spec: str, *, state_dir: Path, fetch: bool = True) -> git.Repo:
    """A local repository as it is, or a URL cloned (then fetched) under the state directory.

    The caller closes it (`with open_repository(...) as repo:`): GitPython keeps `git cat-file`
    processes alive per Repo object until it is closed, so a service that opens one per pass
    and forgets it accumulates child processes and descriptors (issue 11.10).
    """
    if not is_url(spec):
        path = Path(spec)
        if not path.exists():
            raise SourceError(f"repository {spec!r} does not exist")
        try:
            return git.Repo(path, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(f"{spec!r} is not a git repository") from None
    mirror = state_dir / "sources" / hashlib.sha256(spec.encode()).hexdigest()[:16]
    try:
        if not mirror.exists():
            return git.Repo.clone_from(spec, mirror, bare=True)
        repo = git.Repo(mirror)
    except git.GitCommandError as exc:
        raise SourceError(_fetch_failed(spec, exc)) from None
    if fetch:
        try:
            repo.git.fetch("origin", "+refs/heads/*:refs/heads/*", "--prune")
        except git.GitCommandError as exc:
            repo.close()
            raise SourceError(_fetch_failed(spec, exc)) from None
    return repo


def _fetch_failed(spec: str, exc: git.GitCommandError) -> str:
    detail = redact_text(exc.stderr.strip() or str(exc))
    return f"cannot fetch {redact_url(spec)}: {detail}"


def default_branch(repo: git.Repo) -> str:
    try:
        return str(repo.head.reference.name)
    except TypeError:  # detached HEAD
        return "HEAD"


def resolve(repo: git.Repo, *, branch: str | None = None, rev: str | None = None) -> Revision:
    """The commit `rev` (any git revision expression) or the tip of `branch`.

    The revision's name is `branch` or the checked-out branch, even for a `rev` on another
    line: callers that read an arbitrary `rev` rename it with `controller.sources.refs.label`.
    """
    branch_name = branch or default_branch(repo)
    target = rev or branch_name
    if rev is None and branch is not None and branch not in {h.name for h in repo.heads}:
        raise SourceError(f"branch {branch!r} does not exist in {repo.working_dir or repo.git_dir}")
    try:
        commit = repo.commit(target)
    except (git.BadName, ValueError, git.GitCommandError):
        raise SourceError(f"revision {target!r} does not exist") from None
    return Revision(branch_name, commit.hexsha)


def read_commit(repo: git.Repo, sha: str) -> list[SourceFile]:
    """Every policy file of a commit, read from its tree without a checkout.

    A git submodule under a policy folder is left out with a warning (`ignored_submodule`), as
    `files.read_tree` does on a working tree.
    """
    tree = repo.commit(sha).tree
    found: list[SourceFile] = []
    for item in tree.traverse():
        if isinstance(item, git.Submodule):
            if is_under_policy_dirs(str(item.path)):
                found.append(ignored_submodule(str(item.path)))
            continue
        if not isinstance(item, git.Blob) or not is_policy_path(str(item.path)):
            continue
        found.append(_read_blob(tree, item))
    return found


def _read_blob(tree: git.Tree, blob: git.Blob) -> SourceFile:
    path = str(blob.path)
    if blob.mode == SYMLINK_MODE:
        target = blob.data_stream.read().decode("utf-8", "replace")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if target.startswith("/") or resolved.startswith(".."):
            return SourceFile(path, None, "symlink points outside the repository")
        try:
            pointed = tree / resolved
        except KeyError:
            return SourceFile(path, None, f"symlink target {resolved!r} does not exist")
        if not isinstance(pointed, git.Blob) or pointed.mode == SYMLINK_MODE:
            return SourceFile(path, None, "symlink does not point to a regular file")
        return _sized(path, pointed)
    return _sized(path, blob)


def _sized(path: str, blob: git.Blob) -> SourceFile:
    if blob.size > MAX_FILE_BYTES:
        return SourceFile(path, None, f"file is {blob.size} bytes; the limit is {MAX_FILE_BYTES}")
    return SourceFile(path, blob.data_stream.read())
