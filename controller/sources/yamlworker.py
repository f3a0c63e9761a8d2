"""The parse-ahead worker: a process of its own that reads policy files' YAML for the audit walk.

Started by `sources.parseahead` (this interpreter, isolated mode, `main`); it reads requests on
its standard input and writes answers on its standard output, until its input ends. Both are
frames (`write_frame`): an 8-byte big-endian length, then a pickle. A request is (blob ids,
[(path, bytes), ...]); its answer is (the same blob ids, `parse_chunk` of the files), or (blob
ids, None) when parsing failed (the walk then parses everything itself).

A started process, not a fork: the controller's service runs threads (the HTTP server, the
report writer), and a fork copies only the thread that forks, with every lock another thread
held at that moment held forever in the child. This module imports only what parsing needs
(`documents` and PyYAML): the process is ready in about 60 ms, while the walk parses the
first blobs itself.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Sequence
from typing import Any

from controller.sources.documents import parse_plain

_LENGTH = struct.Struct(">Q")

# A document as it crosses the process boundary: (index, value, line, column).
Wire = tuple[int, Any, int, int]


def frame_of(payload: bytes) -> bytes:
    """`payload` as one frame: its length, then itself."""
    return _LENGTH.pack(len(payload)) + payload


def take_frame(buffer: bytearray) -> bytes | None:
    """The payload of the first whole frame in `buffer`, taken out of it; None while the
    buffer holds no whole frame yet."""
    if len(buffer) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack_from(buffer)
    end = _LENGTH.size + length
    if len(buffer) < end:
        return None
    payload = bytes(buffer[_LENGTH.size : end])
    del buffer[:end]
    return payload


def write_frame(descriptor: int, payload: bytes) -> None:
    """Write one frame (`frame_of`) to a blocking pipe; OSError when nobody reads it."""
    data = memoryview(frame_of(payload))
    while data:
        data = data[os.write(descriptor, data) :]


def read_frame(descriptor: int) -> bytes | None:
    """The next frame's payload from a pipe, waiting for it; None at the end of the pipe."""
    header = _read_exactly(descriptor, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = _read_exactly(descriptor, length)
    if payload is None:
        raise EOFError("the pipe ended inside a frame")
    return payload


def _read_exactly(descriptor: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    wanted = size
    while wanted:
        part = os.read(descriptor, wanted)
        if not part:
            if wanted == size:
                return None
            raise EOFError("the pipe ended inside a frame")
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def parse_chunk(files: Sequence[tuple[str, bytes]]) -> list[list[Wire] | None]:
    """`parse_plain` of each (path, bytes), as plain values that pickle fast."""
    out: list[list[Wire] | None] = []
    for path, data in files:
        documents = parse_plain(path, data)
        out.append(
            None
            if documents is None
            else [(d.index, d.data, d.start.line, d.start.column) for d in documents]
        )
    return out


def serve(requests: int, answers: int) -> None:
    """Answer each request until the requests end. A writer thread sends the answers, so the
    worker goes on reading while the walk, busy, has not taken the last ones."""
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_send_all, args=(answers, outbox), daemon=True)
    writer.start()
    try:
        while (request := read_frame(requests)) is not None:
            blobs, files = pickle.loads(request)  # noqa: S301 - from the walk that started us
            try:
                wires: list[list[Wire] | None] | None = parse_chunk(files)
            except Exception:  # noqa: BLE001 - any failure: the walk parses by itself
                wires = None
            outbox.put(pickle.dumps((blobs, wires), protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        outbox.put(None)
        writer.join()


def _send_all(answers: int, outbox: queue.SimpleQueue[bytes | None]) -> None:
    while (message := outbox.get()) is not None:
        try:
            write_frame(answers, message)
        except OSError:  # the walk closed its end: nobody is listening
            return


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the walk stops the worker itself
    # (or the worker's input ends), without a traceback from here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the answers go to the real standard output; anything printed by mistake goes to stderr
    answers = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.fileno(), answers)


if __name__ == "__main__":
    main()
