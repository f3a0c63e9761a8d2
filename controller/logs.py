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
import threading
import time
from collections.abc import Callable, MutableMapping
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


class LogRateLimit:
    """At most `burst` log lines of one kind every `window` seconds; the rest are dropped and
    counted, and the next line of that kind to pass says how many (`suppressed=N`).

    A kind is the logger, the level and the message template (structlog's event name, the
    standard library's unformatted message), not the values: 20,000 clients refused for the
    same reason make one kind (issue 11.6: 455 MB of identical lines in 56 s). Installed as a
    structlog processor and as a `logging.Filter` by `configure`;
    thread-safe, since the writer, the loop and uvicorn log from different threads.
    """

    def __init__(
        self,
        *,
        burst: int = 20,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 10_000,
    ) -> None:
        self.burst = burst
        self.window = window
        self.clock = clock
        self.max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: dict[tuple[object, ...], list[float]] = {}  # [window start, passed, dropped]

    def admit(self, kind: tuple[object, ...]) -> int | None:
        """None: drop this line; else the number of its kind dropped since the last one passed."""
        now = self.clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None or now - state[0] >= self.window:
                if state is None and len(self._kinds) >= self.max_kinds:
                    self._kinds.clear()
                dropped = int(state[2]) if state is not None else 0
                self._kinds[kind] = [now, 1, 0]
                return dropped
            if state[1] < self.burst:
                state[1] += 1
                dropped, state[2] = int(state[2]), 0
                return dropped
            state[2] += 1
            return None

    def __call__(
        self, _logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """The structlog processor."""
        dropped = self.admit(("structlog", method, event.get("event")))
        if dropped is None:
            raise structlog.DropEvent
        if dropped:
            event["suppressed"] = dropped
        return event

    def filter(self, record: logging.LogRecord) -> bool:
        """The `logging.Filter` for the standard library's records (uvicorn, httpx, ...)."""
        dropped = self.admit((record.name, record.levelno, str(record.msg)))
        if dropped is None:
            return False
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like it suppressed)"
            record.args = ()
        return True


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
    limiter = LogRateLimit()  # identical lines collapse: a flood of clients cannot fill a disk
    # The traceback becomes text before `redact`, so a secret in an exception's message (a URL
    # with credentials in an httpx error) is masked like any other; JSON lines then carry it.
    tail: list[structlog.typing.Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[
            limiter,
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
    handler.addFilter(limiter)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(numeric)
