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
itself, and a worker that stays behind is stopped (`GIVE_UP_AFTER`).

The answers come back through a plain pipe that the walk's own thread drains when it asks for
a blob it has no answer for yet (`plain`): no other thread of the walk's process stands
between the worker and the walk. A `ProcessPoolExecutor` did, and cost the worker most of its
use: its result and queue-feeding threads need the GIL, which the busy walk lets go only every
5 ms (`sys.getswitchinterval`), so answers came late and the walk parsed most blobs itself (on
the bench, 0 to 4,990 of 6,405 blobs came from the worker, and the build was no faster). Both
pipes are widened (`pipes.widen`) so that a chunk goes in one write. In the worker, a writer
thread sends the answers, so the worker goes on reading while the walk is busy elsewhere.

A worker helps only with an idle core and a long walk, so `wanted` decides: a first build
(not an incremental walk of a few commits, where starting the process would cost more than it
saves), while a core is idle, in a process that runs no other thread (the worker is forked,
and a fork copies only the calling thread: locks other threads hold would stay held in the
child).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import pickle
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

import git

from controller.sources import pipes
from controller.sources.documents import Position, RawDocument, parse_plain
from controller.sources.git import LogBatch, read_blobs
from controller.sources.loading import NOT_READ, NotRead, ParsedFile, SourceFile, is_policy_path
from controller.sources.policytree import ParseCache

CHUNK_BLOBS = 256  # blobs per message to the worker (and per answer back)
# Blobs in a row the walk read itself because the worker had not got to them yet: then the
# worker is behind (its core is busy) and only costs CPU, so it is stopped.
GIVE_UP_AFTER = 2 * CHUNK_BLOBS
STOP_SECONDS = 5.0  # how long a terminated worker is given to exit before it is killed

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
    `documents.parse_plain(path, bytes)` for a submitted blob the worker has read,
    `loading.NOT_READ` for any other. A worker that fails (it died, a chunk failed in it, it
    could not start) makes every later answer `loading.NOT_READ`: the walk parses in its own
    process, as without a worker.
    """

    def __init__(self) -> None:
        self._process: multiprocessing.process.BaseProcess | None = None
        self._requests: Connection | None = None  # blobs to the worker
        self._answers: Connection | None = None  # plain documents back
        self._submitted: set[str] = set()  # blob ids handed over and not yet answered
        self._read: dict[str, list[_Wire] | None] = {}  # blob id -> the worker's answer
        self._broken = False
        self._behind = 0  # blobs in a row asked for before the worker had read them

    def __enter__(self) -> Self:
        # Forked here, before the walk starts its reader threads: the fork copies one thread,
        # and a fork while a reader thread starts git would hold git's exec pipe open.
        context = multiprocessing.get_context("fork")
        requests_in, requests = context.Pipe(duplex=False)
        answers, answers_out = context.Pipe(duplex=False)
        for end in (requests, answers):  # a chunk in one write, an answer in one read
            pipes.widen(end.fileno())
        self._requests, self._answers = requests, answers
        self._process = context.Process(
            target=_serve,
            args=(requests_in, answers_out, (requests, answers)),
            name="patchctl-parse-ahead",
            daemon=True,
        )
        try:
            self._process.start()
        # no process (out of processes or memory; inside a daemonic process, multiprocessing
        # refuses with an AssertionError): the walk parses everything itself
        except (OSError, AssertionError):
            self._process = None
            self._broken = True
        finally:
            requests_in.close()  # the worker's ends: only the worker holds them now
            answers_out.close()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()
        self._read.clear()
        self._submitted.clear()

    def submit(self, blobs: Iterable[tuple[str, str, bytes]]) -> None:
        """Start parsing these (blob id, path, bytes); blobs submitted before are skipped.

        Called from the thread that reads the blobs (`git.with_blobs_ahead`), a batch before
        the walk reaches them, while the walk asks for answers (`plain`). It does not wait for
        the walk: the worker goes on reading requests while its answers wait to be taken.
        """
        requests = self._requests
        if requests is None or self._broken:
            return
        fresh = [item for item in blobs if item[0] not in self._submitted]
        for start in range(0, len(fresh), CHUNK_BLOBS):
            chunk = fresh[start : start + CHUNK_BLOBS]
            message = pickle.dumps(
                ([blob for blob, _, _ in chunk], [(path, data) for _, path, data in chunk]),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
            self._submitted.update(blob for blob, _, _ in chunk)
            try:
                requests.send_bytes(message)
            except (OSError, ValueError):  # the worker is gone, or the walk stopped it
                self._broken = True
                return

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

        Each blob is answered once. The walk never waits for the worker (`wait` False; tests
        wait): a blob it has not read yet is `NOT_READ`, and the walk parses it itself, as
        fast as it would without a worker. A worker left behind `GIVE_UP_AFTER` blobs in a
        row is stopped: on a busy machine it would only take CPU from the walk and from git.
        """
        if self._broken or blob not in self._submitted:
            return NOT_READ
        if blob not in self._read:
            self._receive(wait=wait, until=blob)
        self._submitted.discard(blob)  # answered now, by the worker or by the walk
        wire = self._read.pop(blob, NOT_READ)
        if self._broken or wire is NOT_READ:
            self._behind += 1
            if self._behind >= GIVE_UP_AFTER:
                self._stop()
            return NOT_READ
        self._behind = 0
        if wire is None:
            return None
        return [
            RawDocument(path, index, value, {(): Position(line, column)})
            for index, value, line, column in wire  # type: ignore[union-attr]
        ]

    def _receive(self, *, wait: bool, until: str) -> None:
        """Take in the answers that came (`wait`: until `until`'s has, or the worker ended)."""
        answers = self._answers
        if answers is None:
            return
        try:
            while until not in self._read and answers.poll(None if wait else 0):
                blobs, wires = pickle.loads(answers.recv_bytes())  # noqa: S301 - from our fork
                if wires is None:  # the chunk failed in the worker
                    self._broken = True
                    return
                for blob, wire in zip(blobs, wires, strict=True):
                    if blob in self._submitted:  # not parsed by the walk meanwhile
                        self._read[blob] = wire
        except (EOFError, OSError):  # the worker died
            self._broken = True

    def _stop(self) -> None:
        """No more answers: the worker is stopped now (what it still had to read is of no use)."""
        self._broken = True
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        process, self._process = self._process, None
        if process is not None and process.pid is not None:
            process.terminate()
            process.join(STOP_SECONDS)
            if process.is_alive():  # pragma: no cover - SIGTERM ends it: nothing catches it
                process.kill()
                process.join()
        if self._answers is not None:
            self._answers.close()
            self._answers = None


def _serve(
    requests: Connection, answers: Connection, parent_ends: tuple[Connection, Connection]
) -> None:
    """The worker: each request's blobs parsed (`parse_chunk`) and answered, until the end of
    the requests. Its writer thread sends the answers, so reading goes on while the walk is
    busy; a chunk that fails is answered `None` (the walk then parses everything itself)."""
    for end in parent_ends:
        end.close()
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_send_all, args=(answers, outbox), daemon=True)
    writer.start()
    try:
        while True:
            try:
                blobs, files = pickle.loads(requests.recv_bytes())  # noqa: S301 - from the walk
            except (EOFError, OSError):
                break
            try:
                wires: list[list[_Wire] | None] | None = parse_chunk(files)
            except Exception:  # noqa: BLE001 - any failure: the walk parses by itself
                wires = None
            outbox.put(pickle.dumps((blobs, wires), protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        outbox.put(None)
        writer.join()


def _send_all(answers: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
    while (message := outbox.get()) is not None:
        try:
            answers.send_bytes(message)
        except OSError:  # the walk closed its end: nobody is listening
            return


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
