"""Commit approval proposals on their branches, update them, delete them (git plumbing only).

Each proposal (`controller.core.proposals.Proposal`) becomes one commit on
`patchctl/proposals/<tenant>/<baseline>` whose parent is the enforced branch's tip and whose tree
is that tip's tree plus the proposed Approval file: a proposal is always "rebased" on the policy
it would change. A branch is rewritten (forced) only when that commit would differ, and deleted
when nothing is left to propose. The controller touches only branches it owns: every commit on
the branch that is not on the enforced branch was authored and committed by the controller's
identity. Any other branch under the prefix (a human's) is reported and left alone.

Like `writeback`, nothing is checked out: objects, a throw-away index, `commit-tree` and
`update-ref` locally, or `push --force-with-lease` to a remote, so a concurrent human push to the
same branch is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import git

from controller.core.proposals import BRANCH_PREFIX, Proposal
from controller.reports.writeback import (
    DEFAULT_AUTHOR,
    NETWORK_TIMEOUT,
    WritebackError,
    _stderr,
    _write_tree,
)

_REMOTE_NS = "refs/patchctl/proposals-remote/"  # where a remote's proposal branches are fetched


@dataclass(frozen=True, slots=True)
class SyncResult:
    """Branch names per outcome of one `sync_branches`."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()  # under the prefix but not the controller's: never touched
    commits: dict[str, str] = field(default_factory=dict)  # branch → its commit now


def sync_branches(
    repo: git.Repo,
    *,
    base: str,
    proposals: Iterable[Proposal],
    remote: str | None = None,
    author: tuple[str, str] = DEFAULT_AUTHOR,
    timeout: float = NETWORK_TIMEOUT,
) -> SyncResult:
    """Make the proposal branches of `repo` (or of `remote`, pushed from `repo`) match
    `proposals`, each built on `base` (the enforced branch's tip commit)."""
    existing = existing_branches(repo, remote, timeout=timeout)
    ours = {b: sha for b, sha in existing.items() if _owned(repo, sha, base=base, author=author)}
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    foreign: list[str] = []
    commits: dict[str, str] = {}
    wanted = {p.branch: p for p in proposals}
    for branch, proposal in sorted(wanted.items()):
        old = existing.get(branch)
        if old is not None and branch not in ours:
            foreign.append(branch)
            continue
        if proposal.hold:  # outside its schedule: an open proposal stays as it is
            if old is not None:
                unchanged.append(branch)
                commits[branch] = old
            continue
        commit = _commit(repo, base=base, proposal=proposal, author=author)
        if old is not None and _same(repo, old, commit):
            unchanged.append(branch)
            commits[branch] = old
            continue
        _set(repo, remote, branch, new=commit, old=old, timeout=timeout)
        (updated if old is not None else created).append(branch)
        commits[branch] = commit
    deleted = []
    for branch, old in sorted(existing.items()):
        if branch in wanted:
            continue
        if branch not in ours:
            foreign.append(branch)
            continue
        _set(repo, remote, branch, new=None, old=old, timeout=timeout)
        deleted.append(branch)
    return SyncResult(
        tuple(created),
        tuple(updated),
        tuple(unchanged),
        tuple(deleted),
        tuple(sorted(foreign)),
        commits,
    )


def existing_branches(
    repo: git.Repo, remote: str | None, *, timeout: float = NETWORK_TIMEOUT
) -> dict[str, str]:
    """Proposal branch → tip, of the local repository or (fetched) of the remote."""
    if remote is None:
        pattern, strip = f"refs/heads/{BRANCH_PREFIX}", "refs/heads/"
    else:
        try:
            repo.git.fetch(
                "--prune",
                remote,
                f"+refs/heads/{BRANCH_PREFIX}*:{_REMOTE_NS}*",
                kill_after_timeout=timeout,
            )
        except git.GitCommandError as exc:
            raise WritebackError(f"cannot read the proposal branches: {_stderr(exc)}") from None
        pattern, strip = _REMOTE_NS, _REMOTE_NS
    listed = str(repo.git.for_each_ref("--format=%(objectname) %(refname)", pattern))
    found = {}
    for line in listed.splitlines():
        sha, _, ref = line.partition(" ")
        name = ref.removeprefix(strip)
        found[name if remote is None else BRANCH_PREFIX + name] = sha
    return found


def _owned(repo: git.Repo, tip: str, *, base: str, author: tuple[str, str]) -> bool:
    """At least one commit beyond `base`, and every such commit authored and committed by
    `author` (by e-mail: the identity the controller commits with)."""
    emails = str(repo.git.log("--format=%ae %ce", tip, "--not", base)).split()
    return bool(emails) and all(e == author[1] for e in emails)


def _commit(repo: git.Repo, *, base: str, proposal: Proposal, author: tuple[str, str]) -> str:
    name, email = author
    identity = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        # A fixed date makes equal proposals equal commits, so an unchanged one is not rewritten.
        "GIT_AUTHOR_DATE": _date(repo, base),
        "GIT_COMMITTER_DATE": _date(repo, base),
    }
    try:
        tree = _write_tree(repo, base, {proposal.path: proposal.document})
        message = f"{proposal.title}\n\n{', '.join(proposal.patches)}\n"
        return str(repo.git.commit_tree(tree, "-p", base, "-m", message, env=identity))
    except git.GitCommandError as exc:
        raise WritebackError(f"cannot commit {proposal.branch!r}: {_stderr(exc)}") from None


def _date(repo: git.Repo, base: str) -> str:
    return str(repo.git.log("-1", "--format=%cI", base))


def _same(repo: git.Repo, old: str, new: str) -> bool:
    """Same parent and same tree: the branch already holds this proposal."""
    show = "--format=%P %T"
    return str(repo.git.log("-1", show, old)) == str(repo.git.log("-1", show, new))


def _set(
    repo: git.Repo,
    remote: str | None,
    branch: str,
    *,
    new: str | None,
    old: str | None,
    timeout: float,
) -> None:
    """Point `branch` at `new` (None: delete it), only if it still is at `old`."""
    ref = f"refs/heads/{branch}"
    try:
        if remote is None:
            if new is None:
                repo.git.update_ref("-d", ref, old or "")
            else:
                repo.git.update_ref("-m", "patchctl: proposal", ref, new, old or "0" * 40)
            return
        lease = f"--force-with-lease={ref}:{old or ''}"
        repo.git.push(lease, remote, f"{new or ''}:{ref}", kill_after_timeout=timeout)
    except git.GitCommandError as exc:
        raise WritebackError(f"cannot update {branch!r}: {_stderr(exc)}") from None
