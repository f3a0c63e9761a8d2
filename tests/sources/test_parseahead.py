"""The worker process that reads policy files' YAML ahead of the audit walk (a real process)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from controller.sources import documents, loading, parseahead
from controller.sources.policytree import ParseCache, blob_id

PLAIN = b"""\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: ap-1, tenant: acme}
spec:
  patches: [USN-1-1]
  targets: {groups: [linux-web]}
  reason: fix
  expires: 2027-01-31
---
apiVersion: patchctl/v1
kind: Approval
metadata: {name: ap-2, tenant: acme}
spec: {patches: [USN-2-1], targets: {groups: [linux-web]}, reason: other, expires: 2027-02-01}
"""
ANCHORS = b"base: &b {a: 1}\nother: *b\n"  # left to the reference parser: not plain
BROKEN = b"kind: ["
PATH = "policies/approvals/ap.yaml"


def positions(raw: list[documents.RawDocument] | None) -> object:
    if raw is None:
        return None
    return [(d.path, d.index, d.data, d.start) for d in raw]


@pytest.mark.parametrize(
    "data",
    [PLAIN, ANCHORS, BROKEN, b"", b"---\n---\n"],
    ids=["plain", "anchors", "broken", "empty", "blank"],
)
def test_the_worker_reads_what_parse_plain_reads(data: bytes) -> None:
    """A blob read by the worker gives `parse_plain`'s documents, at the caller's path."""
    with parseahead.ParseAhead() as ahead:
        ahead.submit([("blob-1", "elsewhere/first.yaml", data)])
        got = ahead.plain("blob-1", PATH, wait=True)

    assert positions(documents.parse_plain(PATH, data)) == positions(got)  # type: ignore[arg-type]


def test_a_blob_never_submitted_is_not_read() -> None:
    """The caller parses what the worker was never given (and a blob is handed out once)."""
    with parseahead.ParseAhead() as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        first = ahead.plain("blob-1", PATH, wait=True)
        again = ahead.plain("blob-1", PATH, wait=True)
        never = ahead.plain("blob-2", PATH, wait=True)

    assert isinstance(first, list)
    assert (again, never) == (loading.NOT_READ, loading.NOT_READ)


def test_a_dead_worker_leaves_the_parsing_to_the_caller() -> None:
    """When the worker dies, every answer is NOT_READ: the walk parses in its own process."""
    with parseahead.ParseAhead() as ahead:
        process = ahead._process
        assert process is not None
        process.kill()
        process.wait()
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)

    assert got == loading.NOT_READ


def test_a_file_parsed_from_the_workers_documents_equals_one_parsed_in_process() -> None:
    """`parse_blob` with a worker gives the objects, lines and problems of a parse in process."""
    blobs = {blob_id(data): data for data in (PLAIN, ANCHORS, BROKEN)}
    with parseahead.ParseAhead() as ahead:
        ahead.submit((blob, PATH, data) for blob, data in blobs.items())
        for blob in blobs:  # the walk never waits: the test does, so that the worker answers
            ahead._receive(wait=True, until=blob)
        with_worker = [
            parseahead.parse_blob(None, ParseCache(), PATH, blob, blobs, ahead)  # type: ignore[arg-type]
            for blob in blobs
        ]
    in_process = [
        parseahead.parse_blob(None, ParseCache(), PATH, blob, blobs, None)  # type: ignore[arg-type]
        for blob in blobs
    ]

    assert in_process == with_worker
    assert [len(parsed.objects) for parsed in with_worker] == [2, 0, 0]


@pytest.mark.parametrize(
    ("full_walk", "cores", "load", "expected"),
    [
        (True, {0, 1}, 0.5, True),
        (False, {0, 1}, 0.5, False),
        (True, {0}, 0.0, False),
        (True, {0, 1}, 1.5, False),
    ],
    ids=["full-walk-idle-core", "incremental", "one-core", "cores-busy"],
)
def test_a_worker_is_wanted_for_a_full_walk_with_an_idle_core(
    monkeypatch: pytest.MonkeyPatch,
    *,
    full_walk: bool,
    cores: set[int],
    load: float,
    expected: bool,
) -> None:
    """Starting a process pays only for a long walk with an idle core to run it on."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: cores)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    assert parseahead.wanted(full_walk=full_walk) is expected


def test_a_worker_is_wanted_beside_other_threads() -> None:
    """The worker is started, not forked: the service's threads do not keep it away."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with parseahead.ParseAhead() as ahead:
            ahead.submit([("blob-1", PATH, PLAIN)])
            got = ahead.plain("blob-1", PATH, wait=True)
    finally:
        stop.set()
        other.join()

    assert positions(documents.parse_plain(PATH, PLAIN)) == positions(got)  # type: ignore[arg-type]


def worker(hook: str) -> list[str]:
    """The worker's command line with `hook` run first (to break or slow its parsing)."""
    return [
        sys.executable,
        "-c",
        f"from controller.sources import yamlworker as w\n{hook}\nw.main()",
    ]


FAILING = worker(
    "def parse_chunk(files):\n    raise ValueError(files)\nw.parse_chunk = parse_chunk"
)
# Workers on a busy core, taken to the extreme: one answers its first chunk and then never
# again, the other never answers at all (a walk that waited for either would never end).
STALLING = worker(
    "import time\nreal = w.parse_chunk\nfirst = []\n"
    "def parse_chunk(files):\n"
    "    if first:\n        time.sleep(1000)\n"
    "    first.append(1)\n    return real(files)\n"
    "w.parse_chunk = parse_chunk"
)
SILENT = worker(
    "import time\ndef parse_chunk(files):\n    time.sleep(1000)\nw.parse_chunk = parse_chunk"
)


def test_a_failed_chunk_leaves_the_parsing_to_the_caller() -> None:
    """A chunk that raises in the worker is answered as failed: the answer is NOT_READ, not an
    error in the walk, and the worker is stopped (it answered: it did not die)."""
    with parseahead.ParseAhead(FAILING) as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)
        answered, stopped = ahead._answered, ahead._process is None

    assert got == loading.NOT_READ
    assert (answered, stopped) == (True, True)


def test_the_walk_uses_the_workers_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the worker has answered, the walk builds the file from its documents and parses
    nothing itself (here it cannot: its own YAML reader fails)."""

    def no_yaml_here(path: str, data: bytes) -> None:
        raise AssertionError(path)

    monkeypatch.setattr(loading, "parse_plain", no_yaml_here)
    blob = blob_id(PLAIN)
    with parseahead.ParseAhead() as ahead:
        ahead.submit([(blob, PATH, PLAIN)])
        ahead._receive(wait=True, until=blob)
        parsed = parseahead.parse_blob(None, ParseCache(), PATH, blob, {blob: PLAIN}, ahead)  # type: ignore[arg-type]

    assert [obj.name for obj in parsed.objects] == ["ap-1", "ap-2"]


def test_submitting_never_waits_for_a_worker_that_does_not_read() -> None:
    """A stopped worker (SIGSTOP) reads nothing: what does not fit in its pipe is not sent,
    the reading thread goes on at once, and the walk parses those blobs itself."""
    big = b"# " + b"x" * 60_000 + b"\n" + PLAIN  # several of them fill the 1 MiB pipe
    blobs = [(f"blob-{n}", PATH, big) for n in range(60)]
    with parseahead.ParseAhead() as ahead:
        process = ahead._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:
            reader = threading.Thread(target=ahead.submit, args=(blobs,))
            reader.start()
            reader.join(timeout=5)
            blocked = reader.is_alive()
            answers = {ahead.plain(blob, PATH) for blob, _, _ in blobs[-5:]}
        finally:
            os.kill(process.pid, signal.SIGCONT)
        started = time.perf_counter()
    stopping = time.perf_counter() - started

    assert not blocked
    assert answers == {loading.NOT_READ}
    assert stopping < 5  # killed, not waited for (a hang shows here, not a speed)


def test_a_blob_larger_than_half_the_pipe_is_left_to_the_walk() -> None:
    """A chunk must fit the pipe whole: a blob that would not is never sent."""
    huge = b"# " + b"x" * (parseahead.pipes.PIPE_BYTES) + b"\n" + PLAIN
    with parseahead.ParseAhead() as ahead:
        ahead.submit([("huge", PATH, huge), ("blob-1", PATH, PLAIN)])
        small = ahead.plain("blob-1", PATH, wait=True)
        large = ahead.plain("huge", PATH, wait=True)

    assert isinstance(small, list)
    assert large == loading.NOT_READ


def test_the_walk_never_waits_for_a_worker_left_behind() -> None:
    """A blob not read yet is NOT_READ (the walk parses it); a worker that stays behind once it
    has started is stopped after `GIVE_UP_AFTER` blobs in a row, and answers nothing more."""
    blobs = [(f"blob-{n}", PATH, PLAIN) for n in range(parseahead.GIVE_UP_AFTER + 2)]
    with parseahead.ParseAhead(STALLING) as ahead:
        ahead.submit(blobs[:1])
        assert isinstance(ahead.plain("blob-0", PATH, wait=True), list)  # it has started
        ahead.submit(blobs[1:])
        answers = [ahead.plain(blob, PATH) for blob, _, _ in blobs[1:-1]]
        stopped = ahead._process is None
        last = ahead.plain(blobs[-1][0], PATH, wait=True)

    assert {loading.NOT_READ} == {*answers, last}
    assert stopped


def test_a_starting_worker_is_given_more_time() -> None:
    """Before its first answer the worker is starting: blobs asked for meanwhile are parsed by
    the walk, and the worker is not stopped for them."""
    blobs = [(f"blob-{n}", PATH, PLAIN) for n in range(parseahead.GIVE_UP_AFTER + 1)]
    with parseahead.ParseAhead(SILENT) as ahead:
        ahead.submit(blobs)
        answers = [ahead.plain(blob, PATH) for blob, _, _ in blobs[:-1]]
        still_running = ahead._process is not None

    assert {loading.NOT_READ} == set(answers)
    assert still_running


@pytest.mark.parametrize(
    "command",
    [["/nonexistent/python"], [sys.executable, "-c", "pass"]],
    ids=["cannot-start", "exits-at-once"],
)
def test_a_worker_that_does_not_serve_leaves_the_parsing_to_the_caller(
    command: list[str],
) -> None:
    """No worker (it cannot start, or it ends at once): every answer is NOT_READ and nothing
    raises: the walk parses everything itself."""
    with parseahead.ParseAhead(command) as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)

    assert got == loading.NOT_READ


def test_ctrl_c_is_the_walks_to_handle_not_the_workers() -> None:
    """Ctrl-C reaches the terminal's whole process group: the worker ignores it (no traceback
    of its own) and goes on answering until the walk stops it."""
    with parseahead.ParseAhead() as ahead:
        process = ahead._process
        assert process is not None
        ahead.submit([("blob-0", PATH, PLAIN)])
        assert isinstance(ahead.plain("blob-0", PATH, wait=True), list)  # it has started
        os.kill(process.pid, signal.SIGINT)
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)

    assert positions(documents.parse_plain(PATH, PLAIN)) == positions(got)  # type: ignore[arg-type]


def test_a_pipe_that_cannot_be_widened_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a pipe cannot be widened (not Linux), the worker still serves: neither side's
    writes and reads wait for the other, whatever the pipe holds."""
    monkeypatch.setattr(parseahead.pipes, "widen", lambda _descriptor, _size=0: 0)
    with parseahead.ParseAhead() as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)

    assert positions(documents.parse_plain(PATH, PLAIN)) == positions(got)  # type: ignore[arg-type]


def test_the_worker_runs_this_very_code_or_nothing(tmp_path: Path) -> None:
    """The worker is started from the directory this `controller` came from; pointed at a
    directory whose `controller` is another (here: none), it refuses to serve and the walk
    parses by itself. From the right one, it serves."""
    wrong = [sys.executable, "-I", "-c", parseahead._BOOT, str(tmp_path)]
    with parseahead.ParseAhead(wrong) as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        refused = ahead.plain("blob-1", PATH, wait=True)
    with parseahead.ParseAhead() as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        served = ahead.plain("blob-1", PATH, wait=True)

    assert refused == loading.NOT_READ
    assert isinstance(served, list)


def test_a_worker_answering_garbage_is_stopped_and_the_walk_goes_on() -> None:
    """What does not read back as an answer ends the worker's part (it is killed, not waited
    for) and the walk parses by itself."""
    garbage = [
        sys.executable,
        "-c",
        "import os, struct, time\nos.write(1, struct.pack('>Q', 7) + b'garbage')\ntime.sleep(30)\n",
    ]
    started = time.perf_counter()
    with parseahead.ParseAhead(garbage) as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        got = ahead.plain("blob-1", PATH, wait=True)
        stopped = ahead._process is None

    assert got == loading.NOT_READ
    assert stopped
    assert time.perf_counter() - started < 10


def test_small_chunks_never_wait_for_a_worker_that_does_not_read() -> None:
    """A pipe holds pages, not bytes: hundreds of small chunks fill it long before their bytes
    do. A stopped worker still never holds the reading thread: what the pipe does not take is
    left to the walk, and a frame taken in part is finished first when it can be."""
    blobs = [
        (f"blob-{n}", PATH, PLAIN + b"# " + b"x" * (1500 + n % 700) + b"\n") for n in range(600)
    ]
    with parseahead.ParseAhead() as ahead:
        process = ahead._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:

            def one_by_one() -> None:
                for blob in blobs:
                    ahead.submit([blob])

            reader = threading.Thread(target=one_by_one)
            reader.start()
            reader.join(timeout=30)
            blocked = reader.is_alive()
            left = ahead.plain(blobs[-1][0], PATH)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        first = ahead.plain(blobs[0][0], PATH, wait=True)  # sent before the pipe filled

    assert not blocked
    assert left == loading.NOT_READ
    assert isinstance(first, list)


def test_an_answer_stopped_halfway_does_not_hold_the_walk() -> None:
    """A worker that stops in the middle of writing an answer (here: for good) leaves the walk
    to parse by itself: only whole answers are read."""
    halfway = [
        sys.executable,
        "-c",
        "import os, struct, time\n"
        "os.write(1, struct.pack('>Q', 1000) + b'12345')\n"
        "time.sleep(1000)\n",
    ]
    with parseahead.ParseAhead(halfway) as ahead:
        ahead.submit([("blob-1", PATH, PLAIN)])
        time.sleep(0.2)  # the half answer is in the pipe
        got = ahead.plain("blob-1", PATH)
        running = ahead._process is not None

    assert got == loading.NOT_READ
    assert running  # behind, not broken: it is given up like any worker left behind
