"""structlog set-up: JSON lines when the output is not a terminal, readable lines when it is.

Secrets never reach a log line: the handlers log ids, never tokens or request bodies, and the
`redact` processor masks any event key that names a secret, as a second line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from controller.server.limits import LogRateLimit

SECRET_WORDS = ("token", "secret", "password", "authorization")


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask the values of keys that name a secret."""
    for key in event:
        lowered = key.lower()
        if any(word in lowered for word in SECRET_WORDS) and not lowered.endswith("_id"):
            event[key] = "[redacted]"
    return event


def configure(*, level: str = "info", json_lines: bool | None = None) -> None:
    """Configure structlog (and route uvicorn's stdlib logging through the same level)."""
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    limiter = LogRateLimit()  # identical lines collapse: a flood of clients cannot fill a disk
    structlog.configure(
        processors=[
            limiter,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # uvicorn and other libraries log through the standard library: same renderer, same stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(limiter)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
