"""Running commands: a timeout that kills the whole process group, output captured and truncated.

Every backend takes a `Runner` so that its parsing can be tested against recorded command output
(the far side), while the agent itself runs the real commands.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Callable, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

# The protocol accepts 256 KiB of job output; the agent keeps well under it so that several
# outputs (pre, install, post) fit in one event.
MAX_OUTPUT_CHARS = 64 * 1024
TRUNCATION_MARK = "\n[... {n} characters cut by patchctl-agent ...]\n"


class Completed(NamedTuple):
    """The outcome of one command: exit code (None when it timed out), merged output."""

    args: tuple[str, ...]
    code: int | None
    output: str

    @property
    def timed_out(self) -> bool:
        return self.code is None


Runner = Callable[..., Completed]


def which(program: str) -> str | None:
    """The path of `program` on PATH, like `shutil.which` (which python3-minimal lacks)."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder, program)  # noqa: PTH118 - str in, str out
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):  # noqa: PTH113
            return candidate
    return None


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """`text` cut in the middle to at most about `limit` characters (head and tail kept,
    because the first lines say what ran and the last ones why it failed)."""
    if len(text) <= limit:
        return text
    keep = max(limit - 80, 2)
    head, tail = text[: keep // 2], text[-(keep - keep // 2) :]
    return head + TRUNCATION_MARK.format(n=len(text) - len(head) - len(tail)) + tail


def run(
    args: Sequence[str],
    *,
    timeout: float = 3600.0,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run `args` (no shell) with `env` added to the agent's environment; on timeout the whole
    process group is killed and `code` is None. A missing program is exit code 127."""
    merged = dict(os.environ)
    merged.update(env or {})
    kwargs: dict[str, object] = {}
    if sys.platform != "win32":
        kwargs["start_new_session"] = True  # so a timeout kills the children too
    try:
        process = subprocess.Popen(  # noqa: S603 - argument vectors built by the agent
            list(args),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=merged,
            cwd=cwd,
            **kwargs,  # type: ignore[call-overload]
        )
    except FileNotFoundError as exc:
        return Completed(tuple(args), 127, f"{args[0]}: not found ({exc})")
    try:
        raw, _ = process.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        raw, _ = process.communicate()
        text = raw.decode("utf-8", "replace") if raw else ""
        return Completed(tuple(args), None, text + f"\n[timed out after {timeout:.0f} s]")
    return Completed(tuple(args), process.returncode, raw.decode("utf-8", "replace"))


def _kill(process: subprocess.Popen[bytes]) -> None:
    if sys.platform == "win32":
        process.kill()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
