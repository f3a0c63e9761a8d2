"""Service settings: where state lives, which database, where to listen, protocol limits.

Validated once at construction (`Settings.__post_init__`), so the hot paths read plain values.
The clock is a setting too: the service asks `settings.clock()` for "now" and tests or the demo
pass their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_STATE_DIR = Path(".patchctl")
DATABASE_FILE = "patchctl.db"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_POLL_INTERVAL = timedelta(seconds=60)
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# Devices per write transaction of the feed re-evaluation's fleet pass (`runtime.feeds`; timed
# by bench/feeds_chunked.py).
REEVALUATION_CHUNK = 250
# Transport limits (issue 11.6; `controller.server.transport`, `controller.server.limits`).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_ENROLMENTS_PER_ADDRESS = 600
DEFAULT_ENROLMENTS_PER_TOKEN = 6000


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(tz=UTC)


def default_database_url(state_dir: Path) -> str:
    """The SQLite database inside a state directory."""
    return f"sqlite:///{(state_dir / DATABASE_FILE).resolve()}"


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080` -> ('127.0.0.1', 8080); `[::1]:8080` -> ('::1', 8080)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"listen address {listen!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"listen port {port} is not between 0 and 65535")
    return host.strip("[]"), port


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What `patchctl serve` and the HTTP app need to know; every field has a working default."""

    state_dir: Path = DEFAULT_STATE_DIR
    db_url: str | None = None  # None: SQLite in the state directory
    listen: str = DEFAULT_LISTEN
    poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    clock: Callable[[], datetime] = field(default=system_clock, compare=False)
    webhook_secret: str | None = field(default=None, repr=False)  # PATCHCTL_WEBHOOK_SECRET
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds for a request's headers
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds for a request's whole body
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT  # seconds an idle connection stays
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open connections; more are refused
    # Enrolments per minute (in bursts of as many) per client address and per enrolment token.
    enrolments_per_address: int = DEFAULT_ENROLMENTS_PER_ADDRESS
    enrolments_per_token: int = DEFAULT_ENROLMENTS_PER_TOKEN

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        if self.poll_interval < timedelta(seconds=1):
            raise ValueError("poll interval must be at least 1s")
        if self.max_body_bytes < 1024:
            raise ValueError("the request body limit must be at least 1 KiB")
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"{name.replace('_', ' ')} must be between 0 and 3600 seconds")
        if self.max_connections < 1:
            raise ValueError("the connection cap must be at least 1")
        if min(self.enrolments_per_address, self.enrolments_per_token) < 1:
            raise ValueError("enrolment rate limits must be at least 1 a minute")

    @property
    def database_url(self) -> str:
        return self.db_url or default_database_url(self.state_dir)

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]
