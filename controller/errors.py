"""The error tree: every patchctl exception says, by its type, what happens next.

Like kopf's `PermanentError`/`TemporaryError` and Flux's `ComputeReconcileResult`, the *kind* of
an error decides the retry, in one function (`decide`), for the reconcile loop, feed
downloads, notification delivery and forge publishing alike:

- `NeedsHumanError` (**needs-a-human**): bad input, configuration or policy. Trying again
  cannot help until something changes; no retry. `ConfigurationError` is the part of it a
  command line names (an option, the configuration file, a file or repository it names): the
  CLI exits 2 for it, 1 for any other needs-a-human error.
- `WaitUntilError` (**wait-until**): try again at a known time: a server's `Retry-After`, a
  lease another replica holds. `retry_after` is the wait, when known.
- `TransientError` (**transient**): try again with exponential back-off: the network, a busy
  or unreachable database, a service shutting down.

An exception of a third-party library (or a bug) is transient: the service must keep going,
and back-off keeps a persistent fault from spinning (kopf's default as well).

`RemoteError` is the one place an instance refines its class: a failed call to another
system (a forge, a notification receiver, a feed server) is transient unless its answer says
otherwise: `permanent` (an HTTP 4xx that time cannot fix) makes it needs-a-human, a
`retry_after` makes it wait-until.

Purely computational: importable by every layer (import-linter: beside `controller.kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import ClassVar

EXIT_FAILURE = 1  # the CLI's "no" / needs-a-human answer
EXIT_USAGE = 2  # usage, configuration or I/O error (controller.cli's documented codes)


class Kind(StrEnum):
    """What happens after an error: the three kinds of the tree (module docstring)."""

    NEEDS_HUMAN = "needs-a-human"
    WAIT_UNTIL = "wait-until"
    TRANSIENT = "transient"


class PatchctlError(Exception):
    """The root of every patchctl exception; subclass one of the three kinds, never this.
    `kind`: what happens next (read it through `kind_of`, which a `RemoteError` refines)."""

    kind: ClassVar[Kind]


class NeedsHumanError(PatchctlError):
    """Bad input, configuration or policy: not retried until something changes (CLI exit 1)."""

    kind = Kind.NEEDS_HUMAN


class ConfigurationError(NeedsHumanError):
    """Usage or configuration: an option, the configuration file, or a file, repository or
    database they name cannot be used (CLI exit 2)."""


class WaitUntilError(PatchctlError):
    """Try again later at a known time: `retry_after` is the wait asked for (None: the next
    regular attempt, e.g. when another replica holds the lease). CLI exit 2."""

    kind = Kind.WAIT_UNTIL

    def __init__(self, *args: object, retry_after: timedelta | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class TransientError(PatchctlError):
    """A fault that passes with time: tried again with exponential back-off. CLI exit 2."""

    kind = Kind.TRANSIENT


class RemoteError(TransientError):
    """A call to another system failed; its answer refines the kind (module docstring):
    `permanent` when trying again cannot help, `retry_after` the wait the other side asked
    for (its `Retry-After` header)."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def kind_of(error: BaseException) -> Kind:
    """The kind of any exception: a patchctl error's own (a `RemoteError`'s answer refines
    it); transient for anything else (a library's error or a bug: back off, keep going)."""
    if isinstance(error, RemoteError):
        if error.permanent:
            return Kind.NEEDS_HUMAN
        return Kind.WAIT_UNTIL if error.retry_after is not None else Kind.TRANSIENT
    if isinstance(error, PatchctlError):
        return error.kind
    return Kind.TRANSIENT


def retry_after_of(error: BaseException) -> timedelta | None:
    """The wait the error asks for (a server's `Retry-After`), None when it names none."""
    wait = getattr(error, "retry_after", None)
    return wait if isinstance(wait, timedelta) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per unit of work (a message, a download, a forge call, a reconcile streak)
    and the wait between them. `max_attempts=None`: never give up (the reconcile loop)."""

    max_attempts: int | None = 5
    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=5)  # caps the backoff
    max_retry_after: timedelta = timedelta(hours=1)  # caps a server's Retry-After

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
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

    def exhausted(self, attempt: int) -> bool:
        """Whether failed attempt number `attempt` was the last one allowed."""
        return self.max_attempts is not None and attempt >= self.max_attempts


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after a failed attempt: the error's `kind`, and `delay`, the wait before
    the next attempt (None: no next attempt, a human must act or the attempts are spent)."""

    kind: Kind
    delay: timedelta | None

    @property
    def retry(self) -> bool:
        return self.delay is not None


def decide(error: BaseException, *, attempt: int, policy: RetryPolicy) -> Verdict:
    """The one retry decision: needs-a-human is never retried; wait-until and transient are,
    after `policy.delay(attempt, retry_after=...)` (exponential back-off, never sooner than
    the wait the error names), until `policy.max_attempts`. `attempt` is 1-based.

    Purely computational, no side effects."""
    kind = kind_of(error)
    if kind is Kind.NEEDS_HUMAN or policy.exhausted(attempt):
        return Verdict(kind, None)
    return Verdict(kind, policy.delay(attempt, retry_after=retry_after_of(error)))


def exit_code(error: BaseException) -> int:
    """The CLI's exit code for an error that ends a command: 1 for needs-a-human, 2 for
    usage and configuration (`ConfigurationError`), wait-until, transient and anything else
    (the documented "usage, configuration or I/O error")."""
    if isinstance(error, ConfigurationError) or kind_of(error) is not Kind.NEEDS_HUMAN:
        return EXIT_USAGE
    return EXIT_FAILURE
