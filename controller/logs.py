"""structlog set-up: JSON lines when the output is not a terminal, readable lines when it is.

Every command logs to stderr through this pipeline (`patchctl` configures it at warning level
for one-shot commands, whose answer is on stdout; `serve` at its `--log-level`), so stdout
carries only a command's output (`--json` stays parseable).

Secrets never reach a log line: the handlers log ids, never tokens or request bodies; and, as a
second line of defence applied to every line of every library (structlog's own, and the
standard library's: uvicorn, httpx, httpcore, git), the `redact` processor masks the values of
keys that name a secret and passes every other text through `controller.redaction.redact_text`
(credentials and query values out of URLs, remembered secrets such as a Slack webhook URL).

An exception logged with `exc_info` (or `log.exception`) is rendered as text under the
`exception` key, traceback included, in both formats: a JSON line carries it whole.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from controller.redaction import redact_text

SECRET_WORDS = ("token", "secret", "password", "authorization")
_PLAIN = (int, float, bool, type(None))


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask the values of keys that name a secret, and secrets inside every other text."""
    for key, value in event.items():
        lowered = key.lower()
        if any(word in lowered for word in SECRET_WORDS) and not lowered.endswith("_id"):
            event[key] = "[redacted]"
        elif key.startswith("_") or isinstance(value, _PLAIN):
            continue  # structlog's own bookkeeping (`_record`), and values that hold no text
        elif isinstance(value, str):
            event[key] = redact_text(value)
        elif "://" in (text := str(value)) or "=" in text:
            event[key] = redact_text(text)  # a URL object, a list of URLs...
    return event


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (a test runner may swap it), so that a
    logger cached at first use never writes to a stream that has since been closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


HANDLER_NAME = "patchctl"


def configure(
    *, level: str = "info", json_lines: bool | None = None, cache_loggers: bool = True
) -> None:
    """Configure structlog (and route uvicorn's stdlib logging through the same level).

    `cache_loggers`: freeze each logger's configuration at its first use (the service's hot
    paths); one-shot commands leave it off so that configuring again takes effect everywhere.
    Configuring twice replaces this module's handler and leaves others on the root logger."""
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    stream: Any = _Stderr()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    # The traceback becomes text before `redact`, so a secret in an exception's message (a URL
    # with credentials in an httpx error) is masked like any other; JSON lines then carry it.
    tail: list[structlog.typing.Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tail,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=cache_loggers,
    )
    # uvicorn and other libraries log through the standard library: same renderer, same stream.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                *tail,
            ],
        )
    )
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(numeric)
