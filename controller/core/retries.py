"""What an HTTP answer says about trying again, for the notification channels, feed downloads
and forge calls; `controller.errors.decide` then takes the one retry decision. Purely
computational: the caller passes the answer's status, its `Retry-After` header and the time
it arrived.

- `is_retryable(status)`: throttling (408, 425, 429) and server errors (5xx) can pass with time;
  other client errors (404, 401, ...) cannot.
- `parse_retry_after(value, now=...)`: the header as the wait it asks for; RFC 9110 §10.2.3
  allows delay-seconds (`20`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`).
- `RetryPolicy` (defined in `controller.errors`, which decides every retry by the error's
  kind): exponential backoff (2 s, 4 s, 8 s, ... up to `max_delay`), never sooner than the
  server asked, and a server's wait honoured up to `max_retry_after` (a server asking for a
  day is asked again after an hour).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from controller.errors import RetryPolicy

__all__ = ["THROTTLED", "RetryPolicy", "is_retryable", "parse_retry_after"]

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
