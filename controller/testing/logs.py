"""The service's real log pipeline (`controller.logs.configure`, JSON lines) writing into a
test's captured stderr, and undoing that configuration afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import structlog

from controller import logs


class Captured(Protocol):
    """What `readouterr()` returns: the text written to stderr since the last call."""

    @property
    def err(self) -> str: ...


class Capture(Protocol):
    """A capture of the process's stderr, such as pytest's `capsys` fixture."""

    def readouterr(self) -> Captured: ...


@contextmanager
def json_logs(capsys: Capture) -> Iterator[list[dict[str, Any]]]:
    """Every JSON line logged inside the block (structlog's and every library's), parsed: one
    dict per line, filled in when the block ends. Logging is restored afterwards."""
    lines: list[dict[str, Any]] = []
    capsys.readouterr()
    logs.configure(level="info", json_lines=True, cache_loggers=False)
    try:
        yield lines
    finally:
        err = capsys.readouterr().err
        restore_logging()
        lines.extend(json.loads(line) for line in err.splitlines() if line.startswith("{"))


def restore_logging(level: int = logging.WARNING) -> None:
    """Undo `controller.logs.configure`: its root handler goes, structlog's defaults return."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
