"""Write reports to a directory, or commit them to a reports branch of a git repository.

`commit_reports` builds the commit with git plumbing (objects written with the object database,
a tree from a throw-away index in a temporary `GIT_INDEX_FILE`, `commit-tree`, `update-ref`), so
the policy branch, the repository's own index and its checked-out working tree are never
touched. The new tree starts from the reports branch's previous tree, so reports of other
tenants written earlier stay; when the tree comes out equal to the previous one nothing is
committed. A URL is worked on in a temporary bare repository that fetches only the reports
branch, and always pushes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import git

from controller import errors
from controller.redaction import redact_text

DEFAULT_BRANCH = "patchctl-reports"
DEFAULT_AUTHOR = ("patchctl", "patchctl@localhost")
NETWORK_TIMEOUT = 120.0  # seconds for one fetch, ls-remote or push
ZERO_SHA = "0" * 40
_URL_RE = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")


class WritebackError(errors.ConfigurationError):
    """The reports cannot be written or committed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What `commit_reports` did: the new commit (None: nothing changed) and whether it pushed."""

    branch: str
    commit: str | None
    tree: str
    parent: str | None
    pushed: bool = False

    @property
    def changed(self) -> bool:
        return self.commit is not None


def check_path(path: str) -> str:
    """A report path as it may be written: relative, POSIX, inside the root, not under `.git`."""
    pure = PurePosixPath(path)
    parts = pure.parts
    if (
        not path
        or "\\" in path
        or pure.is_absolute()
        or not parts
        or any(p in {"", ".", ".."} for p in parts)
        or parts[0].lower() == ".git"
        or str(pure) != path
    ):
        raise WritebackError(f"report path {path!r} is not a plain relative path")
    return path


def write_reports(out_dir: Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write each file under `out_dir` (created as needed), atomically; return the paths."""
    for relative in files:
        check_path(relative)  # every path first: a bad one writes nothing
    written = []
    for relative, content in sorted(files.items()):
        target = out_dir / relative
        data = content.encode("utf-8") if isinstance(content, str) else content
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_bytes(data)
            temporary.replace(target)
        except OSError as exc:
            raise WritebackError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written


def commit_message(revision: str | None, *, generated_at: datetime, paths: int) -> str:
    """The reports commit's message: the policy revision in the subject and as a trailer."""
    when = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stamp = generated_at.astimezone(UTC).replace(microsecond=0).isoformat()
    return (
        f"reports: compliance for {revision or 'no applied revision'} at {when}\n\n"
        f"{paths} report file(s) written by patchctl.\n\n"
        f"Policy-Revision: {revision or 'none'}\n"
        f"Generated-At: {stamp.replace('+00:00', 'Z')}\n"
    )


def commit_reports(  # noqa: PLR0913 - keyword-only options, each with a default
    repo: str | Path,
    *,
    branch: str = DEFAULT_BRANCH,
    files: Mapping[str, bytes | str],
    message: str,
    push: bool = False,
    policy_branch: str | None = None,
    remote: str = "origin",
    author: tuple[str, str] = DEFAULT_AUTHOR,
    timeout: float = NETWORK_TIMEOUT,
) -> CommitResult:
    """Commit `files` to `branch` of `repo` (a local path or a URL) when they change its tree.

    Refuses the branch being reconciled (`policy_branch`) and the branch checked out in a local
    repository. With `push`, a local repository with `remote` fetches that remote's reports
    branch first (building on it) and pushes the result; a URL always pushes.
    """
    for path in files:
        check_path(path)
    local = check_target(repo, branch=branch, policy_branch=policy_branch)
    if local is None:
        return _commit_to_url(
            str(repo), branch=branch, files=files, message=message, author=author, timeout=timeout
        )
    with local:
        target = remote if push and remote in {r.name for r in local.remotes} else None
        return _commit(
            local,
            branch=branch,
            files=files,
            message=message,
            author=author,
            remote=target,
            timeout=timeout,
        )


def check_target(
    repo: str | Path, *, branch: str, policy_branch: str | None = None
) -> git.Repo | None:
    """Refuse a reports branch that must not be written, before any work is done.

    Returns the local repository, for the caller to close, or None for a URL (whose default
    branch is checked when it is reached).
    """
    if branch == policy_branch:
        raise WritebackError(
            f"refusing to write reports to {branch!r}: it is the policy branch being reconciled; "
            "use a separate reports branch such as patchctl-reports"
        )
    _check_branch_name(branch)
    spec = str(repo)
    if _URL_RE.match(spec):
        return None
    try:
        local = git.Repo(spec, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise WritebackError(f"{spec!r} is not a git repository") from None
    if _checked_out_branch(local) == branch:
        local.close()
        raise WritebackError(
            f"refusing to write reports to {branch!r}: it is checked out in {spec}; "
            "reports go to a branch nobody works on"
        )
    return local


def _commit_to_url(
    url: str,
    *,
    branch: str,
    files: Mapping[str, bytes | str],
    message: str,
    author: tuple[str, str],
    timeout: float,
) -> CommitResult:
    with (
        tempfile.TemporaryDirectory(prefix="patchctl-reports-") as scratch,
        git.Repo.init(scratch, bare=True) as bare,
    ):
        head = _remote_head(bare, url, timeout=timeout)
        if head == branch:
            raise WritebackError(
                f"refusing to write reports to {branch!r}: "
                f"it is the default branch of {redact_text(url)}"
            )
        return _commit(
            bare,
            branch=branch,
            files=files,
            message=message,
            author=author,
            remote=url,
            timeout=timeout,
        )


def _commit(
    repo: git.Repo,
    *,
    branch: str,
    files: Mapping[str, bytes | str],
    message: str,
    author: tuple[str, str],
    remote: str | None,
    timeout: float,
) -> CommitResult:
    ref = f"refs/heads/{branch}"
    local_tip = _resolve(repo, ref)
    parent = local_tip
    if remote is not None:
        remote_tip = _fetch_branch(repo, remote, branch, timeout=timeout)
        parent = remote_tip or local_tip
    try:
        tree = _write_tree(repo, parent, files)
        parent_tree = repo.git.rev_parse(f"{parent}^{{tree}}") if parent else None
        if tree == parent_tree:
            if parent is not None and parent != local_tip:
                repo.git.update_ref(ref, parent, local_tip or ZERO_SHA)
            return CommitResult(branch, None, tree, parent)
        name, email = author
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        parents = ["-p", parent] if parent else []
        commit = repo.git.commit_tree(tree, *parents, "-m", message, env=identity)
        repo.git.update_ref("-m", "patchctl: reports", ref, commit, local_tip or ZERO_SHA)
    except git.GitCommandError as exc:
        raise WritebackError(f"cannot commit reports to {branch!r}: {_stderr(exc)}") from None
    pushed = False
    if remote is not None:
        try:
            repo.git.push(remote, f"{ref}:{ref}", kill_after_timeout=timeout)
        except git.GitCommandError as exc:
            raise WritebackError(
                f"committed {commit[:12]} to {branch!r} but could not push it to "
                f"{redact_text(remote)}: {_stderr(exc)}; it will be pushed with the next report"
            ) from None
        pushed = True
    return CommitResult(branch, commit, tree, parent, pushed)


def _write_tree(repo: git.Repo, parent: str | None, files: Mapping[str, bytes | str]) -> str:
    """The parent's tree with `files` added or replaced, built in a throw-away index."""
    with tempfile.TemporaryDirectory(prefix="patchctl-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if parent:
            repo.git.read_tree(parent, env=env)
        else:
            repo.git.read_tree("--empty", env=env)
        paths = sorted(files)
        blobs = _hash_objects(repo, [files[p] for p in paths], Path(scratch))
        entries = [f"100644,{blob},{path}" for path, blob in zip(paths, blobs, strict=True)]
        for start in range(0, len(entries), 200):
            arguments = [a for e in entries[start : start + 200] for a in ("--cacheinfo", e)]
            repo.git.update_index("--add", *arguments, env=env)
        return str(repo.git.write_tree(env=env))


def _hash_objects(repo: git.Repo, contents: list[bytes | str], scratch: Path) -> list[str]:
    """Store each content as a blob (`git hash-object -w`, no filters); their ids in order."""
    names = []
    for index, content in enumerate(contents):
        data = content.encode("utf-8") if isinstance(content, str) else content
        name = scratch / f"blob-{index}"
        name.write_bytes(data)
        names.append(str(name))
    ids: list[str] = []
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        ids += str(repo.git.hash_object("-w", "--no-filters", "--", *chunk)).split()
    return ids


def _resolve(repo: git.Repo, ref: str) -> str | None:
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
    except git.GitCommandError:
        return None


def _fetch_branch(repo: git.Repo, remote: str, branch: str, *, timeout: float) -> str | None:
    """The remote's tip of `branch` (fetched into the object database), or None when absent."""
    try:
        listed = str(repo.git.ls_remote("--heads", remote, branch, kill_after_timeout=timeout))
        tips = {ref: sha for sha, _, ref in (line.partition("\t") for line in listed.splitlines())}
        sha = tips.get(f"refs/heads/{branch}")
        if sha is None:
            return None
        repo.git.fetch(remote, f"refs/heads/{branch}", kill_after_timeout=timeout)
    except git.GitCommandError as exc:
        raise WritebackError(
            f"cannot read branch {branch!r} of {redact_text(remote)}: {_stderr(exc)}"
        ) from None
    return str(sha)


def _remote_head(repo: git.Repo, url: str, *, timeout: float) -> str | None:
    """The branch a remote's HEAD points at."""
    try:
        listed = str(repo.git.ls_remote("--symref", url, "HEAD", kill_after_timeout=timeout))
    except git.GitCommandError as exc:
        raise WritebackError(f"cannot reach {redact_text(url)}: {_stderr(exc)}") from None
    match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", listed, re.MULTILINE)
    return match.group(1) if match else None


def _checked_out_branch(repo: git.Repo) -> str | None:
    try:
        return str(repo.head.reference.name)
    except TypeError:  # detached HEAD
        return None


def _check_branch_name(branch: str) -> None:
    try:
        git.Git().check_ref_format("--branch", branch)
    except git.GitCommandError:
        raise WritebackError(f"{branch!r} is not a valid branch name") from None


def _stderr(exc: git.GitCommandError) -> str:
    text = exc.stderr if isinstance(exc.stderr, str) else str(exc)
    return redact_text(text.strip().removeprefix("stderr:").strip().strip("'")) or str(exc.status)
