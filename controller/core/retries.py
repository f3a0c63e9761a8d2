"""When to try a network call again: the one retry decision of every notification channel and
every feed download. Purely computational: the caller passes the answer's status, its
`Retry-After` header and the time it arrived.

- `is_retryable(status)`: throttling (408, 425, 429) and server errors (5xx) can pass with time;
  other client errors (404, 401, ...) cannot.
- `parse_retry_after(value, now=...)`: the header as the wait it asks for; RFC 9110 §10.2.3
  allows delay-seconds (`20`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`).
- `RetryPolicy.delay(attempt, retry_after=...)`: exponential backoff (2 s, 4 s, 8 s, ... up to
  `max_delay`), never sooner than the server asked, and a server's wait honoured up to
  `max_retry_after` (a server asking for a day is asked again after an hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

THROTTLED = frozenset({408, 425, 429})


def is_retryable(status: int) -> bool:
    """Whether an HTTP answer with this status may succeed if asked again later."""
    return status in THROTTLED or 500 <= status < 600


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """The wait a `Retry-After` header asks for, from `now` (aware); None when absent or
    unreadable. A date in the past is no wait (zero)."""
    if value is None or not (text := value.strip()):
        return None
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # `-0000` (unknown zone): HTTP dates are UTC
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per message or download, and the wait between them."""

    max_attempts: int = 5
    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=5)  # caps the backoff
    max_retry_after: timedelta = timedelta(hours=1)  # caps a server's Retry-After

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.first_delay < timedelta(0) or self.max_delay < self.first_delay:
            raise ValueError("delays must be 0 <= first_delay <= max_delay")
        if self.max_retry_after < self.max_delay:
            raise ValueError("max_retry_after must be at least max_delay")

    def delay(self, attempt: int, *, retry_after: timedelta | None = None) -> timedelta:
        """The wait after failed attempt number `attempt` (1-based): 2s, 4s, 8s, ... up to
        `max_delay`, or the server's `retry_after` when longer, up to `max_retry_after`."""
        backoff = min(self.first_delay * (1 << min(attempt - 1, 32)), self.max_delay)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, self.max_retry_after))
