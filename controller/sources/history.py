"""The audit trail, read from the tracked branch's history: who changed which policy object when.

`walk(repo, branch)` follows the branch first-parent (the commits that landed on it: direct
pushes, merge commits, squash merges), loads the policy at every commit that touches a policy
file, diffs it against the previous valid revision and returns one `AuditEvent` per object
added, changed or removed, with the facts of the commit that made the change: author,
committer, dates, pull/merge request, review trailers and signature.

Fast by construction:
- one `git log --first-parent --raw` reads every commit's metadata, changed paths and blob ids
  (and, through `SIGNATURE_FORMAT`, its verified signature) in a single pass;
- one `git cat-file --batch` reads the changed blobs;
- a `HistoryCache` keeps the parsed documents of every policy file, so a commit costs the files
  it changed: unchanged files are neither read nor parsed again, and cross-references are
  re-checked only for the objects that changed (all of them when a Tenant, DeviceGroup or Script
  changed, since those are what references resolve against).

A commit whose policy does not validate yields a `PolicyInvalid` event with every error (exactly
what `patchctl validate` prints) and the trail continues from the last valid revision: the next
valid commit's events hold everything that changed since, each attributed to the last commit
that touched the object's file.

Incremental: pass the previous walk's `tip` as `since_sha` (and its `cache`) and only the new
commits are read. When `since_sha` is no longer an ancestor of the branch tip the branch was
force-pushed: a `HistoryRewritten` event names the old and new tips and the commits that left
the branch, the objects the rewrite undid come next (with no commit: nobody committed them),
and the walk continues from the common ancestor. Nothing recorded earlier is ever merged away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import git

from controller.core import changes
from controller.core.audit import AuditEvent, Rewrite
from controller.core.changes import AuditEventType
from controller.core.commits import (
    CommitFacts,
    Person,
    PullRequest,
    PullRequestStyle,
    Trailer,
    parse_pull_request,
)
from controller.core.desired import DesiredState
from controller.core.revisions import format_revision
from controller.sources import gcpause, loading, parseahead, signatures
from controller.sources import git as git_source
from controller.sources.git import FileChange, iter_log, read_blobs, resolve_tip
from controller.sources.loading import ParsedFile, SourceFile, parse_policy_file, state_of
from controller.sources.policytree import KeyedFiles, ParseCache, PolicyTree

# What the trail's readers use, exported from where each has its one home.
__all__ = [
    "AuditEvent",
    "CommitFacts",
    "HistoryCache",
    "HistoryWalk",
    "Person",
    "PolicyTree",
    "PullRequest",
    "PullRequestStyle",
    "Rewrite",
    "Trailer",
    "iter_log",
    "parse_policy_file",
    "parse_pull_request",
    "read_blobs",
    "resolve_tip",
    "state_of",
    "walk",
]

RESUME_LOOKBACK = 200  # commits searched for the last valid one when resuming at an invalid one


@dataclass
class HistoryCache:
    """What a walk knows at the commit it stopped at: hand it to the next walk of the branch.

    It holds the parsed policy files at `sha`, those of the last valid commit `valid_sha`, the
    commits since that one (when `sha` does not validate) and a small cache of parsed files by
    content, so reverts and rewrites do not parse the same bytes twice.
    """

    sha: str | None = None
    valid_sha: str | None = None
    tree: PolicyTree = field(default_factory=PolicyTree)
    valid_files: dict[str, ParsedFile] = field(default_factory=dict)
    pending: list[tuple[CommitFacts, frozenset[str]]] = field(default_factory=list)
    pending_paths: set[str] = field(default_factory=set)
    symlinks: set[str] = field(default_factory=set)
    parsed: ParseCache = field(default_factory=ParseCache, repr=False)

    def parse(self, source: SourceFile) -> ParsedFile:
        """`parse_policy_file`, remembered by path and content."""
        return self.parsed.parse(source)

    def valid_state(self, branch: str) -> DesiredState | None:
        """The policy at the last valid commit; None when no commit so far validated."""
        if self.valid_sha is None:
            return None
        return state_of(self.valid_files, format_revision(branch, self.valid_sha))


@dataclass(frozen=True)
class HistoryWalk:
    """The result of one walk: its events (oldest first), the tip reached, the cache to reuse.

    `tip` is the cursor for the next walk (`since_sha=walk.tip, cache=walk.cache`).
    `commits_read` counts the commits `git log` listed; `commits_loaded` those whose policy
    files changed and were parsed; `parsed_ahead` the files whose YAML the worker process
    read (`sources.parseahead`; 0 without one).
    """

    branch: str
    tip: str
    events: tuple[AuditEvent, ...]
    cache: HistoryCache
    commits_read: int
    commits_loaded: int
    parsed_ahead: int = 0

    @property
    def valid_revision(self) -> str | None:
        sha = self.cache.valid_sha
        return None if sha is None else format_revision(self.branch, sha)

    def state(self) -> DesiredState | None:
        """The policy at the last valid commit of the branch."""
        return self.cache.valid_state(self.branch)


# --- the walk --------------------------------------------------------------------------------


def walk(  # noqa: PLR0913 - keyword-only options, each with a default
    repo: git.Repo,
    branch: str,
    *,
    since_sha: str | None = None,
    cache: HistoryCache | None = None,
    verifier: signatures.Verifier | None = None,
    tip: str | None = None,
    parsed: ParseCache | None = None,
    parse_ahead: bool | None = None,
) -> HistoryWalk:
    """The audit events of `branch` after `since_sha` (the whole branch when None).

    Pass the previous walk's `tip` and `cache` to read only the new commits; without the cache
    the policy at `since_sha` is loaded once to diff against. `verifier` holds the trusted keys
    signatures are checked against (none: every signed commit is `unknown-key`). `tip`: the
    branch tip the caller already resolved (the reconcile's fetch), so both read one commit;
    `parsed`: parsed files shared with the caller's loader (for a new cache); `parse_ahead`:
    read the YAML in a worker process (`sources.parseahead`; None: when it pays).
    """
    with ExitStack() as stack:
        if verifier is None:
            verifier = stack.enter_context(signatures.Verifier())
        if parse_ahead is None:
            parse_ahead = parseahead.wanted(full_walk=since_sha is None)
        ahead = stack.enter_context(parseahead.ParseAhead()) if parse_ahead else None
        # A first build makes ~10^5 long-lived objects and no garbage cycles: no GC meanwhile.
        stack.enter_context(gcpause.paused())
        # No name holds the walker: it is gone before the collector is enabled again, and every
        # object version it diffed with it (reference counting frees them), so the collection
        # owed then scans only what the walk returns.
        return _Walker(repo, branch, verifier, parsed or ParseCache(), ahead).run(
            since_sha, cache, tip or git_source.resolve_tip(repo, branch)
        )


class _Walker:
    """One walk: the git reads, then the commits applied to the cache one by one."""

    def __init__(
        self,
        repo: git.Repo,
        branch: str,
        verifier: signatures.Verifier,
        parsed: ParseCache,
        ahead: parseahead.ParseAhead | None,
    ) -> None:
        self.repo = repo
        self.parsed = parsed
        self.branch = branch
        self.verifier = verifier
        self.events: list[AuditEvent] = []
        self.loaded = 0
        self.dumped = changes.JsonMemo()  # an object's `after` in one event is its next `before`
        self.keyed = KeyedFiles()  # each file's objects by key, built once per walk
        self.ahead = ahead  # blobs' YAML read in a worker process, or None

    def revision(self, sha: str) -> str:
        return format_revision(self.branch, sha)

    def run(self, since_sha: str | None, cache: HistoryCache | None, tip: str) -> HistoryWalk:
        if since_sha is None:
            cache, revisions = self.new_cache(), [tip]
        elif since_sha == tip:
            cache = cache if cache is not None and cache.sha == tip else self.cache_at(tip)
            return HistoryWalk(self.branch, tip, (), cache, 0, 0)
        elif git_source.is_ancestor(self.repo, since_sha, tip):
            if cache is None or cache.sha != since_sha:
                cache = self.cache_at(since_sha)
            revisions = [f"^{since_sha}", tip]
        else:
            cache, revisions = self.rewritten(since_sha, tip, cache)
        read = 0
        wanted = parseahead.BlobsToRead(cache.parsed)
        log = git_source.iter_log(self.repo, revisions, verifier=self.verifier)
        # The worker gets each batch's blobs as soon as they are read, a batch ahead of the walk.
        on_read = None if self.ahead is None else self.ahead.submit_batch
        for batch, blobs in git_source.with_blobs_ahead(self.repo, log, wanted, on_read):
            blobs.update(wanted.kept)
            for facts, files in batch:
                self.apply(cache, facts, files, blobs)
            read += len(batch)
        parsed_ahead = self.ahead.used if self.ahead is not None else 0
        return HistoryWalk(
            self.branch, tip, tuple(self.events), cache, read, self.loaded, parsed_ahead
        )

    # --- one commit ---

    def apply(
        self,
        cache: HistoryCache,
        facts: CommitFacts,
        files: Sequence[FileChange],
        blobs: Mapping[str, bytes],
    ) -> None:
        policy = [
            change
            for change in files
            if loading.is_policy_path(change.path)
            and git_source.GITLINK_MODE not in (change.old_mode, change.new_mode)
        ]
        cache.sha = facts.sha
        if not policy and not cache.symlinks:
            return
        if cache.symlinks or any(change.involves_symlink for change in policy):
            changed = self.reload(cache, facts.sha)
        else:
            for change in policy:
                if change.blob is None:
                    cache.tree.replace(change.path, None)
                    continue
                parsed = parseahead.parse_blob(
                    self.repo, cache.parsed, change.path, change.blob, blobs, self.ahead
                )
                cache.tree.replace(change.path, parsed)
            changed = {change.path for change in policy}
        if not changed:
            return
        self.loaded += 1
        cache.pending.append((facts, frozenset(changed)))
        cache.pending_paths |= changed
        errors = cache.tree.errors()
        if not errors:
            self.settle(cache, facts)
            return
        self.events.append(
            AuditEvent(
                AuditEventType.POLICY_INVALID, self.revision(facts.sha), facts, errors=errors
            )
        )

    def reload(self, cache: HistoryCache, sha: str) -> set[str]:
        """Read a whole commit again: symlinks may point at files that changed elsewhere."""
        fresh = {
            source.path: cache.parse(source)
            for source in git_source.read_policy_commit(self.repo, sha)
        }
        current = cache.tree.files
        changed = {
            path
            for path in current.keys() | fresh.keys()
            if path not in current
            or path not in fresh
            or current[path].source != fresh[path].source
        }
        for path in changed:
            cache.tree.replace(path, fresh.get(path))
        cache.symlinks = git_source.symlink_paths(self.repo, sha)
        return changed

    def settle(self, cache: HistoryCache, facts: CommitFacts) -> None:
        """A valid commit: the changes since the last valid one become events.

        Only the paths changed since then are compared, and a path whose parsed file is the
        very same (content seen before, from the parse cache) holds no change.
        """
        paths = cache.pending_paths
        files, valid_files = cache.tree.files, cache.valid_files
        before, path_before = self.keyed.objects_at(valid_files, files, paths)
        after, path_after = self.keyed.objects_at(files, valid_files, paths)
        revision = self.revision(facts.sha)
        pending = cache.pending
        for change in changes.diff_keyed(before, after, dump=self.dumped):
            was, now = path_before.get(change.key), path_after.get(change.key)
            author = facts  # the last commit that touched the object's file(s)
            for commit, changed in reversed(pending):
                if was in changed or now in changed:
                    author = commit
                    break
            self.events.append(AuditEvent(change.event, revision, author, change, now or was))
        for path in paths:
            if path in files:
                valid_files[path] = files[path]
            else:
                valid_files.pop(path, None)
        cache.valid_sha = facts.sha
        cache.pending.clear()
        cache.pending_paths = set()

    # --- starting points ---

    def new_cache(self, sha: str | None = None) -> HistoryCache:
        return HistoryCache(sha=sha, parsed=self.parsed)

    def cache_at(self, sha: str) -> HistoryCache:
        """A cache for the policy at `sha`, read in full (and its last valid commit, if not it)."""
        cache = self.new_cache(sha)
        for source in git_source.read_policy_commit(self.repo, sha):
            cache.tree.replace(source.path, cache.parse(source))
        cache.symlinks = git_source.symlink_paths(self.repo, sha)
        if not cache.tree.errors():
            cache.valid_sha, cache.valid_files = sha, dict(cache.tree.files)
            return cache
        parents = self.repo.commit(sha).parents
        older_shas = (
            git_source.first_parent_shas(
                self.repo, parents[0].hexsha, f"--max-count={RESUME_LOOKBACK}"
            )
            if parents
            else []
        )
        for older in reversed(older_shas):
            tree = PolicyTree()
            for source in git_source.read_policy_commit(self.repo, older):
                tree.replace(source.path, cache.parse(source))
            if not tree.errors():
                cache.valid_sha, cache.valid_files = older, dict(tree.files)
                break
        cache.pending_paths = {
            path
            for path in cache.tree.files.keys() | cache.valid_files.keys()
            if cache.tree.files.get(path) != cache.valid_files.get(path)
        }
        return cache

    def rewritten(
        self, old_tip: str, new_tip: str, cache: HistoryCache | None
    ) -> tuple[HistoryCache, list[str]]:
        """A force-push: report it, undo what left the branch, continue from the common base."""
        old_known = git_source.commit_exists(self.repo, old_tip)
        base = git_source.merge_base(self.repo, old_tip, new_tip) if old_known else None
        dropped = (
            git_source.first_parent_shas(self.repo, old_tip, *([f"^{base}"] if base else []))
            if old_known
            else []
        )
        self.events.append(
            AuditEvent(
                AuditEventType.HISTORY_REWRITTEN,
                self.revision(new_tip),
                None,
                rewrite=Rewrite(old_tip, new_tip, base, tuple(dropped)),
            )
        )
        if cache is None or cache.sha != old_tip:
            cache = self.cache_at(old_tip) if old_known else None
        base_cache = self.cache_at(base) if base is not None else self.new_cache()
        if cache is not None:
            undo_revision = self.revision(base or new_tip)
            before = cache.valid_files
            after = base_cache.valid_files
            before_path = {obj.key: path for path, f in before.items() for obj in f.objects}
            after_path = {obj.key: path for path, f in after.items() for obj in f.objects}
            for change in changes.diff_objects(
                (obj for f in before.values() for obj in f.objects),
                (obj for f in after.values() for obj in f.objects),
            ):
                path = after_path.get(change.key) or before_path.get(change.key)
                self.events.append(AuditEvent(change.event, undo_revision, None, change, path))
        revisions = [f"^{base}", new_tip] if base is not None else [new_tip]
        return base_cache, revisions
