"""The service's real log pipeline (`controller.logs.configure`, JSON lines) writing into
pytest's captured stderr, restored afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog

from controller import logs


@contextmanager
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, Any]]]:
    """Every JSON line logged inside the block (structlog's and every library's), parsed."""
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
