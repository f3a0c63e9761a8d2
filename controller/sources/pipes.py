"""Pipes to and from git and the parse-ahead worker, read and written in large pieces;
and git started with its output through one (`start_git`).

A thread of the walk's process that reads or writes a pipe needs the GIL again after every
system call, and a busy walk lets it go only every 5 ms (`sys.getswitchinterval`). With
Linux's default 64 KiB pipes, what git wrote reached the walk at 64 KiB per 5 ms, slower than
the walk read it: on the audit bench, the walk waited on git for 0.1-0.2 s of a 0.85 s build
(issue 14 item 5). A pipe widened to `PIPE_BYTES` (Linux's `F_SETPIPE_SZ`, up to the system's
`/proc/sys/fs/pipe-max-size`, 1 MiB by default) moves 16 times as much per system call.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO

import git

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


def start_git(
    repo: git.Repo,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    stderr: IO[bytes],
    stdin: int | None = None,
) -> subprocess.Popen[bytes]:
    """`git ARGS` on the repository's git directory, its standard output a widened pipe: run
    in that directory (the caller's may be gone), in the C locale, `env` over this process's
    environment. The caller waits for it."""
    command = [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", f"--git-dir={repo.git_dir}", *args]
    process = subprocess.Popen(  # noqa: S603 - git, with arguments built by patchctl
        command,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=repo.git_dir,
        env={**os.environ, "LC_ALL": "C", "LANGUAGE": "C", **(env or {})},
    )
    if process.stdout is not None:
        widen(process.stdout.fileno())
    return process
