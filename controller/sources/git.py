"""Policy files straight from git: a local repository or a URL, a branch, a revision.

Reading a commit's tree needs no checkout, so a PR's head can be validated next to main. The
audit trail's reads live here too: a branch's first-parent history with every commit's facts
and changed paths in one streaming `git log` (`iter_log`), blobs in batches (`read_blobs`), and
the ancestry questions a force-push raises (`is_ancestor`, `merge_base`, `first_parent_shas`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import os
import posixpath
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from controller import errors
from controller.core.commits import (
    CommitFacts,
    Person,
    Trailer,
    parse_pull_request,
    parse_trailers,
)
from controller.core.records import quick_init
from controller.core.revisions import Revision
from controller.redaction import redact_text, redact_url
from controller.sources import pipes, signatures
from controller.sources.documents import MAX_FILE_BYTES
from controller.sources.loading import (
    POLICY_DIRS,
    SourceFile,
    ignored_submodule,
    is_policy_path,
    is_under_policy_dirs,
    unread_file,
)

SYMLINK_MODE = 0o120000
RAW_SYMLINK_MODE = "120000"  # as `git log --raw` and `git ls-tree` print modes
GITLINK_MODE = "160000"
BLOB_BATCH = 2000  # blobs read per `git cat-file --batch` process
FIRST_BATCH = 32  # commits in a walk's first batch; each next one twice as many, to BLOB_BATCH
STREAM_CHUNK_BYTES = pipes.PIPE_BYTES  # at most this much of git's output read at once
STREAM_AHEAD_CHUNKS = 16  # chunks read ahead of the caller (memory: at most 16 MiB)
_URL_RE = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")


class SourceError(errors.ConfigurationError):
    """The repository, branch or revision cannot be read; the message says which and why."""


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
        # GitPython takes a full 40-digit id on trust (the all-zero id forges send as a new
        # branch's `before` included): the object is looked up only when read
        kind = repo.odb.info(commit.binsha).type
    except (git.BadName, ValueError, git.GitCommandError):
        raise SourceError(f"revision {target!r} does not exist") from None
    if kind != b"commit":
        raise SourceError(f"revision {target!r} is a {kind.decode()}, not a commit")
    return Revision(branch_name, commit.hexsha)


def read_commit(repo: git.Repo, sha: str) -> list[SourceFile]:
    """Every policy file of a commit, read from its tree without a checkout.

    A git submodule under a policy folder is left out with a warning (`ignored_submodule`), and
    so is a file there that is not a policy file (`unread_file`), as `files.read_tree` does on a
    working tree.
    """
    tree = repo.commit(sha).tree
    found: list[SourceFile] = []
    for item in tree.traverse():
        if isinstance(item, git.Submodule):
            if is_under_policy_dirs(str(item.path)):
                found.append(ignored_submodule(str(item.path)))
            continue
        if not isinstance(item, git.Blob):
            continue
        if is_policy_path(str(item.path)):
            found.append(_read_blob(tree, item))
        elif (unread := unread_file(str(item.path))) is not None:
            found.append(unread)
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


# --- the history of a branch ------------------------------------------------------------------

_LOG_FORMAT = (
    "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00"
    f"{signatures.SIGNATURE_FORMAT}%x00"
    "%(trailers:only=true,unfold=true,separator=%x1f)%x00%B"
)
_HEADER_FIELDS = 10 + signatures.SIGNATURE_FIELDS
_SHA = re.compile(rb"^[0-9a-f]{40}([0-9a-f]{24})?$")
_NO_BLOB = "0" * 40


@quick_init
@dataclass(frozen=True, slots=True)
class FileChange:
    """One path a commit changed against its first parent (`git log --raw`)."""

    path: str
    old_mode: str
    new_mode: str
    blob: str | None  # the new content's blob id; None when the file was deleted

    @property
    def involves_symlink(self) -> bool:
        return RAW_SYMLINK_MODE in (self.old_mode, self.new_mode)


LogBatch = list[tuple[CommitFacts, tuple[FileChange, ...]]]


def iter_log(
    repo: git.Repo,
    revisions: Sequence[str],
    *,
    verifier: signatures.Verifier,
    batch_size: int = BLOB_BATCH,
) -> Iterator[list[tuple[CommitFacts, tuple[FileChange, ...]]]]:
    """The first-parent commits of `revisions`, oldest first, with the paths each changed.

    One streaming `git log` process reads metadata, trailers, verified signatures and raw
    changes together; commits come in batches, so git keeps producing while the caller works.
    Merge commits get the author of their merged head (one extra git call per batch, made in
    a thread while the next batch is read: a batch comes out once the next one is in).
    """
    command = [
        *verifier.git_options(),
        "-c",
        "log.showSignature=false",
        "log",
        "-z",
        "--reverse",
        "--first-parent",
        "--diff-merges=first-parent",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--root",
        "--encoding=UTF-8",
        f"--format={_LOG_FORMAT}",
        *revisions,
        "--",
    ]
    chunks = stream_git_chunks(repo, command, env=verifier.environment())
    records = _parse_log(itertools.chain.from_iterable(chunks))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting: tuple[LogBatch, concurrent.futures.Future[dict[str, Person]]] | None = None
        for batch in _batches(repo, records, verifier, batch_size):
            reading = pool.submit(_merged_head_authors, repo, batch)
            if waiting is not None:
                yield _with_merged_heads(waiting[0], waiting[1].result())
            waiting = (batch, reading)
        if waiting is not None:
            yield _with_merged_heads(waiting[0], waiting[1].result())


def _batches(
    repo: git.Repo,
    records: Iterable[tuple[CommitFacts, tuple[FileChange, ...]]],
    verifier: signatures.Verifier,
    batch_size: int,
) -> Iterator[LogBatch]:
    """`records` in batches: small ones first, doubling up to `batch_size`, so the caller (whose
    pipeline holds a batch or two back, `with_blobs_ahead`) starts on the first commits while
    git is still writing the rest."""
    batch: LogBatch = []
    size = min(FIRST_BATCH, batch_size)
    for facts, files in records:
        signature = verifier.at_signing_time(repo, facts.sha, facts.signature)
        if signature != facts.signature:  # judged at signing time, not today (signatures.py)
            facts = dataclasses.replace(facts, signature=signature)  # noqa: PLW2901
        batch.append((facts, files))
        if len(batch) >= size:
            yield batch
            batch = []
            size = min(size * 2, batch_size)
    if batch:
        yield batch


def stream_git(repo: git.Repo, args: Sequence[str], *, env: Mapping[str, str]) -> Iterator[bytes]:
    """The NUL-separated fields git prints, as they come; GitCommandError when git fails.

    A thread reads git's output ahead (up to `STREAM_AHEAD_CHUNKS` chunks), so git keeps
    producing while the caller works instead of waiting on a full pipe: on the audit bench,
    git's own time is then hidden behind the walk's (issue 14 item 5).
    """
    chunks = stream_git_chunks(repo, args, env=env)
    try:
        yield from itertools.chain.from_iterable(chunks)
    finally:
        chunks.close()  # stopped early: git and the reader thread end now


def stream_git_chunks(
    repo: git.Repo, args: Sequence[str], *, env: Mapping[str, str]
) -> Generator[list[bytes], None, None]:
    """`stream_git`'s fields a list at a time (one per read from git's pipe): iterated through
    `itertools.chain`, a field then costs no generator step (130,000 of them for the bench's
    10,000 commits)."""
    with tempfile.TemporaryFile() as errors:
        process = pipes.start_git(repo, args, env=env, stderr=errors)
        if process.stdout is None:  # pragma: no cover - stdout is a pipe
            raise SourceError("git log did not start")
        chunks: queue.Queue[bytes | None] = queue.Queue(STREAM_AHEAD_CHUNKS)
        reader = threading.Thread(
            target=_read_ahead, args=(process.stdout.fileno(), chunks), daemon=True
        )
        reader.start()
        finished = False
        try:
            rest = b""
            while (chunk := chunks.get()) is not None:
                fields = (rest + chunk).split(b"\0")
                rest = fields.pop()
                yield fields
            finished = True
            if rest:
                yield [rest]
        finally:
            if not finished:  # the caller stopped early: stop git, let the reader see the end
                process.kill()
                while chunks.get() is not None:
                    pass
            reader.join()
            process.stdout.close()
            status = process.wait()
        if status != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise git.GitCommandError(["git", *args], status, message)


def _read_ahead(descriptor: int, chunks: queue.Queue[bytes | None]) -> None:
    """A pipe's bytes into `chunks` as they come (each read waits without the GIL), then None."""
    try:
        while chunk := os.read(descriptor, STREAM_CHUNK_BYTES):
            chunks.put(chunk)
    finally:
        chunks.put(None)


def _merged_head_authors(repo: git.Repo, batch: LogBatch) -> dict[str, Person]:
    """The authors of the merged heads (second parents) of a batch's merge commits, by sha."""
    heads = [facts.parents[1] for facts, _ in batch if facts.is_merge]
    return _authors(repo, heads) if heads else {}


def _with_merged_heads(batch: LogBatch, authors: Mapping[str, Person]) -> LogBatch:
    if not authors:
        return batch
    return [
        (
            dataclasses.replace(facts, merged_head_author=authors.get(facts.parents[1]))
            if facts.is_merge
            else facts,
            files,
        )
        for facts, files in batch
    ]


def _parse_log(fields: Iterable[bytes]) -> Iterator[tuple[CommitFacts, tuple[FileChange, ...]]]:
    """Records of `_LOG_FORMAT` fields, each followed by `--raw -z` entries (`:meta`, path).

    A record's header is taken whole (`islice`): only the raw entries after it are looked at
    one by one, so the cost is per changed path, not per field.
    """
    values = iter(fields)
    known = _Known()  # people and trailer lists, built once per walk
    value = next(values, None)
    while value is not None:
        if not value.strip():  # between records
            value = next(values, None)
            continue
        if not _SHA.match(value.strip()):
            raise SourceError(f"unexpected `git log` output near {value[:60]!r}")
        header = [value, *itertools.islice(values, _HEADER_FIELDS - 1)]
        if len(header) < _HEADER_FIELDS:
            return  # git stopped mid-record: its exit status says why
        changed: list[FileChange] = []
        value = next(values, None)
        while value is not None and (meta := value.lstrip(b"\n")).startswith(b":"):
            path = next(values, None)
            if path is None:
                value = None
                break
            old_mode, new_mode, _, blob = meta[1:].decode().split(" ", 4)[:4]
            changed.append(
                FileChange(
                    path.decode("utf-8", "surrogateescape"),
                    old_mode,
                    new_mode,
                    blob if blob.strip("0") else None,
                )
            )
            value = next(values, None)
        yield _facts(header, known), tuple(changed)


@dataclass
class _Known:
    """The people and trailer lists of the records read so far. Both are immutable values, so
    commits by the same people share them: a walk of a long history builds a handful of
    `Person`s instead of two per commit (fewer objects to build, and to keep)."""

    people: dict[tuple[str, str], Person] = dataclasses.field(default_factory=dict)
    trailers: dict[str, tuple[Trailer, ...]] = dataclasses.field(default_factory=dict)

    def person(self, name: str, email: str) -> Person:
        found = self.people.get((name, email))
        if found is None:
            found = self.people[name, email] = Person(name, email)
        return found

    def trailer_list(self, text: str) -> tuple[Trailer, ...]:
        found = self.trailers.get(text)
        if found is None:
            found = self.trailers[text] = parse_trailers(text)
        return found


def _facts(header: list[bytes], known: _Known | None = None) -> CommitFacts:
    """A record's header fields as facts (`known`: what earlier records of the walk built)."""
    # One decode for the whole header: NUL is ASCII, so each field decodes as it would alone.
    text = b"\0".join(header).decode("utf-8", "replace").split("\0")
    sha, parents, author, author_email, authored, committer, committer_email, committed = text[:8]
    signature = signatures.parse_signature(text[8 : 8 + signatures.SIGNATURE_FIELDS])
    trailer_text, message = text[8 + signatures.SIGNATURE_FIELDS :]
    message = message.rstrip("\n")
    if known is None:
        known = _Known()
    return CommitFacts(
        sha=sha.strip(),
        parents=tuple(parents.split()),
        author=known.person(author, author_email),
        committer=known.person(committer, committer_email),
        authored_at=datetime.fromisoformat(authored),
        committed_at=datetime.fromisoformat(committed),
        message=message,
        pull_request=parse_pull_request(message),
        trailers=known.trailer_list(trailer_text),
        signature=signature,
    )


def _authors(repo: git.Repo, shas: Sequence[str]) -> dict[str, Person]:
    stdout = signatures.git_with_input(
        repo,
        ["log", "--no-walk=unsorted", "--stdin", "--format=%H%x00%an%x00%ae%x00"],
        ("\n".join(dict.fromkeys(shas)) + "\n").encode(),
    )
    fields = [token.strip() for token in stdout.decode("utf-8", "replace").split("\0")]
    return {
        fields[at]: Person(fields[at + 1], fields[at + 2]) for at in range(0, len(fields) - 2, 3)
    }


def read_blobs(repo: git.Repo, blobs: Iterable[str]) -> dict[str, bytes]:
    """The content of each blob, through `git cat-file --batch` (one process per batch)."""
    wanted = list(dict.fromkeys(blobs))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), BLOB_BATCH):
        batch = wanted[start : start + BLOB_BATCH]
        stdout = signatures.git_with_input(
            repo, ["cat-file", "--batch"], ("\n".join(batch) + "\n").encode()
        )
        at = 0
        while at < len(stdout):
            end = stdout.index(b"\n", at)
            header = stdout[at:end].split(b" ")
            if len(header) < 3:  # "<sha> missing"
                at = end + 1
                continue
            size = int(header[2])
            found[header[0].decode()] = stdout[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
    return found


def with_blobs_ahead(
    repo: git.Repo,
    batches: Iterable[LogBatch],
    wanted: Callable[[str, str], bool],
    on_read: Callable[[LogBatch, dict[str, bytes]], None] | None = None,
) -> Iterator[tuple[LogBatch, dict[str, bytes]]]:
    """Each batch of `iter_log` with the blobs it wrote that are `wanted(path, blob)`.

    The blobs are read in a thread one batch ahead: git reads the next batch's blobs while the
    caller works on this one. `wanted` is asked in the caller's thread, before the caller has
    seen the previous batch: a blob it skips must still be readable on demand. `on_read` is
    called in the reading thread with each batch's blobs as soon as they are read (a batch
    before the caller gets them: the YAML worker starts on them then, `parseahead`).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        ahead: tuple[LogBatch, concurrent.futures.Future[dict[str, bytes]]] | None = None
        for batch in batches:
            blobs = [c.blob for _, cs in batch for c in cs if c.blob and wanted(c.path, c.blob)]
            reading = (batch, pool.submit(_read_and_tell, repo, batch, blobs, on_read))
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = reading
        if ahead is not None:
            yield ahead[0], ahead[1].result()


def _read_and_tell(
    repo: git.Repo,
    batch: LogBatch,
    blobs: Sequence[str],
    on_read: Callable[[LogBatch, dict[str, bytes]], None] | None,
) -> dict[str, bytes]:
    found = read_blobs(repo, blobs)
    if on_read is not None:
        on_read(batch, found)
    return found


def read_policy_commit(repo: git.Repo, sha: str) -> list[SourceFile]:
    """The policy files of a commit, without the ones left out with a warning (submodules):
    the log leaves gitlinks out too, so both ways of reading a commit hold the same paths."""
    return [source for source in read_commit(repo, sha) if not source.ignored]


def symlink_paths(repo: git.Repo, sha: str) -> set[str]:
    listing = repo.git.ls_tree("-r", "-z", sha, "--", *POLICY_DIRS)
    found: set[str] = set()
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.startswith(RAW_SYMLINK_MODE) and is_policy_path(path):
            found.add(path)
    return found


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
    except git.GitCommandError:
        return False
    return True


def merge_base(repo: git.Repo, one: str, other: str) -> str | None:
    try:
        return str(repo.git.merge_base(one, other)).strip() or None
    except git.GitCommandError:
        return None


def commit_exists(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
    except git.GitCommandError:
        return False
    return True


def first_parent_shas(repo: git.Repo, *revisions: str) -> list[str]:
    output = str(repo.git.rev_list("--first-parent", "--reverse", *revisions))
    return output.split()


def resolve_tip(repo: git.Repo, branch: str) -> str:
    """The commit the branch points at; SourceError when there is no such branch."""
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
    except git.GitCommandError:
        raise SourceError(f"branch {branch!r} does not exist") from None
