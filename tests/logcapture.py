"""The service's real log pipeline (`controller.server.logs.configure`, JSON lines) writing into
pytest's captured stderr, restored afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog

from controller.server import logs


@contextmanager
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, Any]]]:
    """Every JSON line logged inside the block (structlog's and every library's), parsed."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    lines: list[dict[str, Any]] = []
    capsys.readouterr()
    logs.configure(level="info", json_lines=True)
    # Module-level loggers must not keep the captured stream once the block ends.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield lines
    finally:
        err = capsys.readouterr().err
        root.handlers, root.level = saved[0], saved[1]
        structlog.reset_defaults()
        lines.extend(json.loads(line) for line in err.splitlines() if line.startswith("{"))
