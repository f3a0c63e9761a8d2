"""Policy files' YAML read in a worker process ahead of the audit walk (issue 14 item 5).

A first audit build spends part of its time reading YAML (`documents.parse_plain`). That work
depends only on a blob's bytes, so a second process can do it while the walk applies the
commits before: the thread that reads each log batch's blobs hands them to the worker as soon
as they are read, a batch before the walk reaches them (`submit_batch`, called by
`git.with_blobs_ahead`), and when the walk reaches a blob it takes the plain documents back
(`plain`), leaving validation, the policy tree and the diff where they were. The result is
exactly `parse_plain`'s: the worker runs the same function on the same bytes; only the
documents' path is set again on the caller's side.

The walk never waits for the worker: a blob the worker has not read yet is parsed by the walk
itself, and a worker that stays behind is stopped (`GIVE_UP_AFTER`). It used to wait, and
gained little (0.2 s of 1.3 s on the bench): the walk handed a batch over only when it reached
it, in chunks of 64, and each chunk's result reaches the walk's process through the executor's
thread, which gets the GIL only when the walk's thread lets it go (every 5 ms): the worker
spent much of the build waiting for its next task, and the walk for the worker. Chunks are
now larger (fewer hand-overs) and handed over a batch early.

A worker helps only with an idle core and a long walk, so `wanted` decides: a first build
(not an incremental walk of a few commits, where starting the process would cost more than it
saves), while a core is idle, in a process that runs no other thread (the worker is forked,
and a fork copies only the calling thread: locks other threads hold would stay held in the
child).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import git

from controller.sources.documents import Position, RawDocument, parse_plain
from controller.sources.git import LogBatch, read_blobs
from controller.sources.loading import NOT_READ, NotRead, ParsedFile, SourceFile, is_policy_path
from controller.sources.policytree import ParseCache

CHUNK_BLOBS = 256  # blobs per task: few tasks, as each result waits for the GIL (module doc)
# Blobs in a row the walk read itself because the worker had not got to them yet: then the
# worker is behind (its core is busy) and only costs CPU, so it is stopped.
GIVE_UP_AFTER = 2 * CHUNK_BLOBS

# A document as it crosses the process boundary: (index, value, line, column).
_Wire = tuple[int, Any, int, int]


def wanted(*, full_walk: bool) -> bool:
    """Whether a walk should parse ahead: a full walk, an idle core, no other thread.

    An idle core, not just a second one: on a machine whose cores are busy, the walk would wait
    for a worker that waits for a core (on the shared 2-core bench machine at a load average
    of 4, parsing ahead was no faster, once 40% slower: `bench/audit.py`).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    idle = (cores or 1) - os.getloadavg()[0]
    return full_walk and (cores or 1) > 1 and idle >= 1 and threading.active_count() == 1


class ParseAhead:
    """One worker process parsing blobs' YAML for one walk; a context manager.

    `submit` hands over (blob id, path, bytes) in chunks; `plain(blob, path)` is
    `documents.parse_plain(path, bytes)` for a submitted blob (waiting for its chunk if need
    be), `loading.NOT_READ` for any other. A worker that fails (it died, it could not start) makes
    every later answer `loading.NOT_READ`: the walk parses in its own process, as without a worker.
    """

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._chunks: dict[str, tuple[concurrent.futures.Future[list[Any]], int]] = {}
        self._broken = False
        self._behind = 0  # blobs in a row asked for before the worker had read them

    def __enter__(self) -> Self:
        # Started here, before the walk starts its reader threads: the fork copies one thread.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("fork")
        )
        # The first task forks the worker, right now: later, a reader thread may be starting
        # git, and a fork then would hold git's exec pipe open and hang that thread.
        self._pool.submit(parse_chunk, ())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._chunks.clear()

    def submit(self, blobs: Iterable[tuple[str, str, bytes]]) -> None:
        """Start parsing these (blob id, path, bytes); blobs submitted before are skipped.

        Called from the thread that reads the blobs (`git.with_blobs_ahead`), a batch before
        the walk reaches them, while the walk asks for answers (`plain`): at worst a blob is
        submitted twice.
        """
        if self._pool is None or self._broken:
            return
        fresh = [item for item in blobs if item[0] not in self._chunks]
        for start in range(0, len(fresh), CHUNK_BLOBS):
            chunk = fresh[start : start + CHUNK_BLOBS]
            try:
                future = self._pool.submit(parse_chunk, [(path, data) for _, path, data in chunk])
            except (RuntimeError, concurrent.futures.BrokenExecutor):
                self._broken = True
                return
            for position, (blob, _, _) in enumerate(chunk):
                self._chunks[blob] = (future, position)

    def submit_batch(self, batch: LogBatch, blobs: Mapping[str, bytes]) -> None:
        """`submit` the blobs of a log batch that were read (`git.with_blobs_ahead`)."""
        self.submit(
            (change.blob, change.path, blobs[change.blob])
            for _, changes in batch
            for change in changes
            if change.blob is not None and change.blob in blobs
        )

    def plain(
        self, blob: str, path: str, *, wait: bool = False
    ) -> list[RawDocument] | NotRead | None:
        """The blob's plain documents at `path` (None: not a plain file), or `loading.NOT_READ`.

        The walk never waits for the worker (`wait` False): a blob whose chunk is not read yet
        is `NOT_READ`, and the walk parses it itself, as fast as it would without a worker. A
        worker left behind `GIVE_UP_AFTER` blobs in a row is stopped: on a busy machine it
        would only take CPU from the walk and from git.
        """
        found = self._chunks.pop(blob, None)
        if found is None or self._broken:
            return NOT_READ
        future, position = found
        if not wait and not future.done():
            self._behind += 1
            if self._behind >= GIVE_UP_AFTER:
                self._give_up()
            return NOT_READ
        self._behind = 0
        try:
            wire = future.result()[position]
        except Exception:  # noqa: BLE001 - any failure of the worker: the walk parses itself
            self._broken = True
            return NOT_READ
        if wire is None:
            return None
        return [
            RawDocument(path, index, value, {(): Position(line, column)})
            for index, value, line, column in wire
        ]

    def _give_up(self) -> None:
        """No more answers: what was queued is cancelled (a chunk being read completes)."""
        self._broken = True
        for future, _ in list(self._chunks.values()):
            future.cancel()
        self._chunks.clear()


def parse_chunk(files: Sequence[tuple[str, bytes]]) -> list[list[_Wire] | None]:
    """In the worker: `parse_plain` of each (path, bytes), as plain values that pickle fast."""
    out: list[list[_Wire] | None] = []
    for path, data in files:
        documents = parse_plain(path, data)
        out.append(
            None
            if documents is None
            else [(d.index, d.data, d.start.line, d.start.column) for d in documents]
        )
    return out


def parse_blob(
    repo: git.Repo,
    parsed: ParseCache,
    path: str,
    blob: str,
    blobs: Mapping[str, bytes],
    ahead: ParseAhead | None,
) -> ParsedFile:
    """The file a commit wrote at `path`: its blob parsed before, or read with the batch (or
    now) and parsed, with the plain documents the worker read when there is one."""
    known = parsed.known(path, blob)
    if known is not None:
        return known
    if blob not in blobs:  # known when the batch was read, forgotten since: read it now
        blobs = read_blobs(repo, [blob])
    data = blobs.get(blob)
    refusal = None if data is not None else "blob missing from the clone"
    plain = NOT_READ if ahead is None else ahead.plain(blob, path)
    return parsed.parse(SourceFile(path, data, refusal), blob=blob, plain=plain)


class BlobsToRead:
    """Which blobs of a log batch the walk reads (`git.with_blobs_ahead`): the policy files' not
    parsed before. The bytes of those parsed before are kept (`kept`) until the walk ends: the
    parse cache is asked a batch ahead and may forget one before the walk reaches it, and
    `parse_blob` would then start a `git cat-file` for that single blob."""

    def __init__(self, parsed: ParseCache) -> None:
        self.parsed = parsed
        self.kept: dict[str, bytes] = {}

    def __call__(self, path: str, blob: str) -> bool:
        if not is_policy_path(path):
            return False
        data = self.parsed.data_of(blob)
        if data is None:
            return True
        self.kept[blob] = data
        return False
