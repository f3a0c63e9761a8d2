"""One entry point for "load the policy at this place": a working tree, a branch or a revision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import git

from controller.core.revisions import Revision, format_revision
from controller.sources import files, loading, refs
from controller.sources import git as git_source
from controller.sources.git import SourceError

__all__ = ["Loaded", "SourceError", "load", "load_revision"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """The result of loading, and the revision it was read from (None: an uncommitted tree)."""

    revision: str | None
    result: loading.LoadResult
    description: str  # what was read, for messages: "working tree of ./repo", "main@sha1:…"
    # the policy files read, by path: to locate a field in one after the fact (`validate`'s
    # rule warnings), since the fast loader keeps only each document's first line
    sources: Mapping[str, loading.SourceFile] = field(default_factory=dict)


def load(
    spec: str,
    *,
    state_dir: Path,
    branch: str | None = None,
    rev: str | None = None,
) -> Loaded:
    """Load a policy repository.

    A local directory with neither `branch` nor `rev` is read as it is on disk (uncommitted edits
    included), which is what an editor or a pre-commit hook wants; otherwise the commit is read
    from git without touching any checkout.
    """
    if not git_source.is_url(spec) and branch is None and rev is None:
        root = Path(spec)
        if not root.is_dir():
            raise SourceError(f"repository {spec!r} does not exist or is not a directory")
        revision = _head_revision(root)
        read = files.read_tree(root)
        result = loading.load_policy(read, revision=revision)
        where = f"working tree of {spec}" + (
            f" at {revision}" if revision else " (uncommitted changes)"
        )
        return Loaded(revision, result, where, _by_path(read))
    with git_source.open_repository(spec, state_dir=state_dir) as repo:
        if rev is not None:
            return load_revision(repo, rev)
        resolved = git_source.resolve(repo, branch=branch)
        source_files = git_source.read_commit(repo, resolved.sha)
    revision = str(resolved)
    result = loading.load_policy(source_files, revision=revision)
    return Loaded(revision, result, revision, _by_path(source_files))


def load_revision(repo: git.Repo, rev: str) -> Loaded:
    """The policy at `rev` (any revision expression) of an open repository, named after the ref
    it was given as (`pr-42@sha1:…`, `bob/openssl@sha1:…`), never the checked-out branch."""
    resolved = git_source.resolve(repo, rev=rev)
    revision = format_revision(refs.label(repo, rev, resolved.sha), resolved.sha)
    source_files = git_source.read_commit(repo, resolved.sha)
    result = loading.load_policy(source_files, revision=revision)
    return Loaded(revision, result, revision, _by_path(source_files))


def _by_path(sources: list[loading.SourceFile]) -> dict[str, loading.SourceFile]:
    return {source.path: source for source in sources}


def _head_revision(root: Path) -> str | None:
    """The revision a clean working tree is at; None when it is not a repository or is dirty."""
    try:
        with git.Repo(root) as repo:
            dirty = repo.git.status("--porcelain", "--", *loading.POLICY_DIRS)
            if repo.head.is_valid() and not dirty:
                return str(Revision(git_source.default_branch(repo), repo.head.commit.hexsha))
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, ValueError):
        return None
    return None
