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
itself, and a worker that stays behind is stopped (`GIVE_UP_AFTER`). Nor does the thread that
hands blobs over: both pipes are non-blocking. A chunk the worker's full input pipe does not
take is left to the walk (a blocking write made the walk run at the pace of a slow worker,
and hang behind a stopped one; checking the free space first is not enough, as a pipe holds
pages, not bytes), and answers are read as far as they have come, whole frames decoded.

The worker is a process of its own (`sources.yamlworker`), started, not forked: the service
runs other threads, and a fork would copy the locks they hold. The answers come back through
its standard output, which the walk's own thread drains when it asks for a blob it has no
answer for yet: no other thread of the walk's process stands between the worker and the walk.
A `ProcessPoolExecutor` did, and cost the worker most of its use: its result and queue-feeding
threads need the GIL, which the busy walk lets go only every 5 ms (`sys.getswitchinterval`),
so answers came late and the walk parsed most blobs itself (on the bench, 0 to 4,990 of 6,405
blobs came from the worker, and the build was no faster). Both pipes are widened
(`pipes.widen`) so that a chunk goes in one write.

A worker helps only with an idle core and a long walk, so `wanted` decides: a first build
(not an incremental walk of a few commits, where starting the process would cost more than it
saves), while a core is idle.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import git

import controller
from controller.sources import pipes
from controller.sources.documents import Position, RawDocument
from controller.sources.git import LogBatch, read_blobs
from controller.sources.loading import NOT_READ, NotRead, ParsedFile, SourceFile, is_policy_path
from controller.sources.policytree import ParseCache
from controller.sources.yamlworker import Wire, frame_of, take_frame

CHUNK_BLOBS = 256  # blobs per message to the worker (and per answer back)
# Blobs in a row the walk read itself because the worker had not got to them yet: then the
# worker is behind (its core is busy) and only costs CPU, so it is stopped. Until its first
# answer it is still starting (about 60 ms): it is given `STARTING_ALLOWANCE` times as many.
GIVE_UP_AFTER = 2 * CHUNK_BLOBS
STARTING_ALLOWANCE = 4
# A chunk's bytes at most (and a blob's: a larger one is left to the walk).
MAX_CHUNK_BYTES = pipes.DEFAULT_PIPE_BYTES * 8
# The worker's start, run by this interpreter in isolated mode (`-I`: environment variables,
# the user's site and the current directory left out), given this process's module path to
# import from, so that it imports what this process imports; checked, so that the worker runs
# this very `controller` or nothing (the walk then parses by itself). Ctrl-C is ignored from
# the first line: the walk stops the worker (a terminal sends it to the whole group).
_BOOT = """\
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
import json, sys
from pathlib import Path
root, path = sys.argv[1], json.loads(sys.argv[2])
sys.path[:] = path
import controller
if Path(controller.__file__).resolve().parent.parent != Path(root):
    sys.exit("patchctl: the parse-ahead worker found another controller package")
from controller.sources.yamlworker import main
main()
"""


def wanted(*, full_walk: bool) -> bool:
    """Whether a walk should parse ahead: a full walk, and an idle core.

    An idle core, not just a second one: on a machine whose cores are busy, the walk would wait
    for a worker that waits for a core (on the shared 2-core bench machine at a load average
    of 4, parsing ahead was no faster, once 40% slower: `bench/audit.py`).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    idle = (cores or 1) - os.getloadavg()[0]
    return full_walk and (cores or 1) > 1 and idle >= 1


class ParseAhead:
    """One worker process parsing blobs' YAML for one walk; a context manager.

    `submit` hands over (blob id, path, bytes) in chunks; `plain(blob, path)` is
    `documents.parse_plain(path, bytes)` for a submitted blob the worker has read,
    `loading.NOT_READ` for any other. A worker that fails (it could not start, it died, a
    chunk failed in it) makes every later answer `loading.NOT_READ`: the walk parses in its
    own process, as without a worker. `command`: the worker's command line (default: this
    interpreter running `sources.yamlworker`).
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self._command = list(command) if command is not None else _worker_command()
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: IO[bytes] | None = None  # the worker's standard input
        self._answers: IO[bytes] | None = None  # its standard output
        self._poll = select.poll()
        self._unsent = b""  # the rest of a request the full pipe took only in part
        self._inbox = bytearray()  # answer bytes read, not yet a whole frame
        # the reading thread writes requests while the walk's thread may stop the worker: the
        # pipe is closed only between two writes (a closed descriptor's number may be reused)
        self._writing = threading.Lock()
        self._submitted: set[str] = set()  # blob ids handed over and not yet answered
        self._read: dict[str, list[Wire] | None] = {}  # blob id -> the worker's answer
        self._broken = False
        self._answered = False  # the worker has answered once: it has started
        self._behind = 0  # blobs in a row asked for before the worker had read them
        self.used = 0  # answers the walk took from the worker

    def __enter__(self) -> Self:
        try:
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd="/",  # not the caller's directory, which may be gone
            )
        except OSError:  # no process to be had: the walk parses everything itself
            self._broken = True
            return self
        self._requests, self._answers = self._process.stdin, self._process.stdout
        if self._requests is None or self._answers is None:  # pragma: no cover - both pipes
            self._stop()
            return self
        self._poll.register(self._answers.fileno(), select.POLLIN)
        for end in (self._requests, self._answers):  # neither side ever waits for the other
            pipes.widen(end.fileno())
            os.set_blocking(end.fileno(), False)
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
        the walk reaches them, while the walk asks for answers (`plain`). Never waits: a chunk
        the worker's input pipe does not take now (the worker is behind, or stopped) is not
        sent, nor is a blob over `MAX_CHUNK_BYTES`; the walk parses those.
        """
        if self._broken:
            return
        chunk: list[tuple[str, str, bytes]] = []
        size = 0
        for item in blobs:
            if item[0] in self._submitted or len(item[2]) > MAX_CHUNK_BYTES:
                continue
            if chunk and (len(chunk) >= CHUNK_BLOBS or size + len(item[2]) > MAX_CHUNK_BYTES):
                if not self._send(chunk):
                    return
                chunk, size = [], 0
            chunk.append(item)
            size += len(item[2])
        if chunk:
            self._send(chunk)

    def _send(self, chunk: list[tuple[str, str, bytes]]) -> bool:
        """Send one chunk if the pipe takes it now; whether the worker may take more. A frame
        the pipe took in part is finished before the next one (the worker reads whole frames);
        a chunk not sent at all is left to the walk."""
        blobs = [blob for blob, _, _ in chunk]
        frame = frame_of(
            pickle.dumps(
                (blobs, [(path, data) for _, path, data in chunk]),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        )
        self._submitted.update(blobs)  # before the worker may answer them
        with self._writing:
            if self._requests is None or self._broken:
                return False
            descriptor = self._requests.fileno()
            try:
                if self._unsent:
                    self._unsent = self._unsent[os.write(descriptor, self._unsent) :]
                written = 0 if self._unsent else os.write(descriptor, frame)
            except BlockingIOError:  # full: the worker is behind
                written = 0
            except OSError:  # the worker is gone
                self._broken = True
                return False
            if written == 0:
                self._submitted.difference_update(blobs)  # left to the walk
                return False
            self._unsent = frame[written:]
        return True

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
            limit = GIVE_UP_AFTER if self._answered else STARTING_ALLOWANCE * GIVE_UP_AFTER
            if self._behind >= limit:
                self._stop()
            return NOT_READ
        self._behind = 0
        self.used += 1
        if wire is None:
            return None
        return [
            RawDocument(path, index, value, {(): Position(line, column)})
            for index, value, line, column in wire  # type: ignore[union-attr]
        ]

    def _receive(self, *, wait: bool, until: str) -> None:
        """Take in the answers that came (`wait`: until `until`'s has, or the worker ended).
        Reads what the pipe holds and decodes the whole frames among it: a worker stopped in
        the middle of a frame does not hold the walk."""
        answers = self._answers
        if answers is None:
            return
        try:
            while until not in self._read and self._poll.poll(None if wait else 0):
                try:
                    data = os.read(answers.fileno(), pipes.PIPE_BYTES)
                except BlockingIOError:
                    continue
                if not data:  # the worker ended
                    self._stop()
                    return
                self._inbox += data
                while (frame := take_frame(self._inbox)) is not None:
                    if not self._take(frame):
                        return
        # the worker died mid-answer, or sent what does not read back: whatever it is, the
        # walk goes on by itself
        except Exception:  # noqa: BLE001
            self._stop()

    def _take(self, frame: bytes) -> bool:
        """One answer in; False when it says the worker failed (it is stopped then)."""
        blobs, wires = pickle.loads(frame)  # noqa: S301 - from our own worker
        self._answered = True
        if wires is None:  # the chunk failed in the worker: no more of its answers
            self._stop()
            return False
        for blob, wire in zip(blobs, wires, strict=True):
            if blob in self._submitted:  # not parsed by the walk meanwhile
                self._read[blob] = wire
        return True

    def _stop(self) -> None:
        """No more answers: the worker is killed now (what it still had to read is of no use).
        SIGKILL, not SIGTERM: a worker started by a process that ignores SIGTERM ignores it too,
        and the stop would wait for it."""
        self._broken = True
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
        with self._writing:  # not while the reading thread writes: the number may be reused
            if self._requests is not None:
                self._requests.close()
                self._requests = None
        if self._answers is not None:
            self._poll.unregister(self._answers.fileno())
            self._answers.close()
            self._answers = None


def _worker_command() -> list[str]:
    """This interpreter starting the worker with this process's module path (entries relative
    to the current directory left out: the worker runs elsewhere)."""
    root = str(Path(controller.__file__).resolve().parent.parent)
    path = [entry for entry in sys.path if entry and Path(entry).is_absolute()]
    return [sys.executable, "-I", "-c", _BOOT, root, json.dumps(path)]


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
