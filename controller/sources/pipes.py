"""Pipes to and from git and the parse-ahead worker, read and written in large pieces.

A thread of the walk's process that reads or writes a pipe needs the GIL again after every
system call, and a busy walk lets it go only every 5 ms (`sys.getswitchinterval`). With
Linux's default 64 KiB pipes, what git wrote reached the walk at 64 KiB per 5 ms, slower than
the walk read it: on the audit bench, the walk waited on git for 0.1-0.2 s of a 0.85 s build
(issue 14 item 5). A pipe widened to `PIPE_BYTES` (Linux's `F_SETPIPE_SZ`, up to the system's
`/proc/sys/fs/pipe-max-size`, 1 MiB by default) moves 16 times as much per system call.
"""

from __future__ import annotations

import fcntl

PIPE_BYTES = 1 << 20  # what a widened pipe holds; the unit git's output is read in
DEFAULT_PIPE_BYTES = 1 << 16  # Linux's default: what a pipe holds when it cannot be widened


def widen(descriptor: int, size: int = PIPE_BYTES) -> int:
    """Let the pipe at `descriptor` hold `size` bytes; answers what it holds now (in bytes),
    0 when the system cannot tell (not Linux, not a pipe)."""
    try:
        return int(fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, size))
    except (AttributeError, OSError):  # not Linux, or over the system's limit for a pipe
        pass
    try:
        return int(fcntl.fcntl(descriptor, fcntl.F_GETPIPE_SZ))
    except (AttributeError, OSError):
        return 0
