"""Feed imports as the runtime runs them: into the catalogue, then over the whole fleet.

- `import_records`: one transaction that upserts a feed's records into the catalogue then, when
  the catalogue changed (or an earlier pass was left unfinished), `reevaluate_fleet`: a new
  advisory reaches every device with a stored inventory without waiting for agents.
  `patchctl feed import` calls it.
- `reevaluate_fleet`: the fleet's feed findings recomputed in chunks of `REEVALUATION_CHUNK`
  devices, each read in a snapshot, evaluated outside any transaction and written in its own
  short write transaction that re-checks each device under the lock
  (`controller.store.findings.write_chunk`), so agent reports are written between chunks and
  never overwritten by a stale evaluation; resumable after an interruption (docs/feeds.md,
  "The fleet pass in chunks").
- `refresh_due_feeds`: the PatchFeed objects of the desired state, each imported when its
  `refresh` interval has passed since its last run (kept in the store's status, key
  `feed:<tenant>/<name>`), or when its spec changed; then one fleet pass for all of them. Cheap
  when nothing is due (no policy feed: no database access; otherwise one status read), and it
  never raises for a bad feed: the error goes to the feed's status and raises one `FeedFailed`
  alert per failure streak.

Where a source may be read from, and how, is `controller.runtime.feedsources`: a path in the
policy repository at the applied revision, or a URL or local path the server configuration
allows. Status and alerts show the source redacted (`controller.redaction`), and a refused
source is a failed run whose message names the rule, never the content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from controller import errors
from controller.core.ids import AlertKey
from controller.feeds import read_feed
from controller.feeds.common import FeedError, FeedResult
from controller.kinds.notifications import AlertSeverity, EventType
from controller.redaction import redact_text, redact_url
from controller.runtime.feedsources import FeedSourceError, FeedSources
from controller.runtime.settings import REEVALUATION_CHUNK
from controller.store import alerts as alert_store
from controller.store import catalogue, findings
from controller.store import status as status_store

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from controller.core.desired import DesiredState
    from controller.kinds.feeds import PatchFeed
    from controller.store import Connection, Store

log = structlog.get_logger("patchctl.feeds")

STATUS_PREFIX = "feed:"
RETRY_AFTER_FAILURE = timedelta(minutes=10)  # a failed feed is retried sooner than its refresh
MAX_SERVER_WAIT = timedelta(days=1)  # a server's Retry-After beyond this is capped
MAX_ERRORS_KEPT = 20  # per feed in its status; the count says how many there were
FEED_FAILED = EventType.FEED_FAILED.value  # visible in alerts, not notified (not NOTIFIABLE)


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What one import did to the catalogue and to the fleet's findings."""

    records: int
    new: int
    updated: int
    unchanged: int
    errors: tuple[FeedError, ...] = ()
    fleet: findings.FleetEvaluation | None = None  # None: catalogue unchanged, nothing to redo
    warnings: tuple[FeedError, ...] = ()  # imported, but e.g. an advisory that matches no host
    fleet_complete: bool = True  # False: a newer import took the fleet pass over midway
    failed: int = 0  # records and documents not imported, each once (`FeedResult.failed`)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "errors": [str(e) for e in self.errors],
            "warnings": [str(w) for w in self.warnings],
            "fleet": self.fleet.as_dict() if self.fleet is not None else None,
        }


def import_records(
    store: Store,
    result: FeedResult,
    *,
    now: datetime,
    chunk_size: int = REEVALUATION_CHUNK,
    on_progress: ProgressCallback | None = None,
) -> ImportOutcome:
    """Upsert a feed's records (one transaction), then re-evaluate the fleet in chunks
    (`reevaluate_fleet`) when the catalogue changed or an earlier pass was interrupted."""
    with store.write() as conn:
        counts = catalogue.upsert_records(conn, result.records, now=now)
    fleet = reevaluate_if_pending(store, now=now, chunk_size=chunk_size, on_progress=on_progress)
    return ImportOutcome(
        records=len(result.records),
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        errors=result.errors,
        fleet=fleet.evaluation if fleet is not None else None,
        warnings=result.warnings,
        fleet_complete=fleet.complete if fleet is not None else True,
        failed=result.failed,
    )


# --- the fleet's feed findings, in chunks --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a fleet re-evaluation is, for a progress line: `done` of `total` devices after
    `seconds` (wall clock), the longest chunk write transaction so far in seconds."""

    done: int
    total: int
    seconds: float
    longest_write: float = 0.0

    @property
    def rate(self) -> float:
        """Devices per second so far (0 before the first chunk)."""
        return self.done / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class FleetPass:
    """One chunked re-evaluation: its counts (of the devices this run evaluated; a resumed run
    counts from where it resumed), whether it reached the end (False: a newer catalogue import
    took over), the device id it resumed after ("" from the start), and its timing."""

    evaluation: findings.FleetEvaluation
    complete: bool
    resumed_after: str
    chunks: int
    seconds: float
    longest_write: float


def reevaluate_if_pending(
    store: Store,
    *,
    now: datetime,
    chunk_size: int = REEVALUATION_CHUNK,
    on_progress: ProgressCallback | None = None,
) -> FleetPass | None:
    """Re-evaluate the fleet when its findings are not complete for the current catalogue
    (changed since the last pass, or a pass was interrupted: it resumes); None when they are."""
    with store.read() as conn:
        version = catalogue.catalogue_version(conn)
        progress = findings.read_reevaluation(conn)
    if progress is not None and not progress.pending(version):
        return None
    return reevaluate_fleet(store, now=now, chunk_size=chunk_size, on_progress=on_progress)


def reevaluate_fleet(
    store: Store,
    *,
    now: datetime,
    chunk_size: int = REEVALUATION_CHUNK,
    on_progress: ProgressCallback | None = None,
    resume: bool = True,
) -> FleetPass:
    """Recompute every stored inventory's feed findings against the current catalogue, in
    chunks of `chunk_size` devices: each chunk is read in a read transaction, evaluated with no
    transaction open, and written in its own short write transaction
    (`controller.store.findings.write_chunk`, which re-checks every device under the lock), so
    reports are ingested between chunks. Leaves the same rows as the one-transaction
    `findings.reevaluate_fleet`. Resumes an interrupted pass for the same catalogue unless
    `resume` is False. `on_progress` is called after each chunk.

    Raises ValueError for a `chunk_size` below 1; store errors propagate (the committed chunks
    stay, and the next pass resumes after them)."""
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, not {chunk_size}")
    clock = _Stopwatch()
    with store.read() as conn:
        view = findings.current_catalogue(conn)
        previous = findings.read_reevaluation(conn)
        after = previous.resume_after(view.version) if previous is not None and resume else ""
        total, done = findings.count_inventories(conn, after=after)
    resumed_after, chunks, totals = after, 0, findings.FleetEvaluation()
    while chunk := _read_chunk(store, after=after, limit=chunk_size):
        evaluations = [findings.evaluate(view, item.device) for item in chunk]
        rendered = findings.render(evaluations)  # JSON too, before the lock is taken
        with clock.write(), store.write() as conn:
            written = findings.write_chunk(
                conn, view, chunk, evaluations, now=now, rendered=rendered
            )
        if written is None:  # a newer import bumped the catalogue: its own pass covers the fleet
            log.info("fleet re-evaluation superseded by a newer catalogue", after=after)
            return FleetPass(
                totals,
                complete=False,
                resumed_after=resumed_after,
                chunks=chunks,
                seconds=clock.seconds,
                longest_write=clock.longest,
            )
        totals, after, chunks = totals + written, chunk[-1].device.device_id, chunks + 1
        done += len(chunk)
        if on_progress is not None:
            on_progress(Progress(done, max(total, done), clock.seconds, clock.longest))
    with clock.write(), store.write() as conn:
        complete = findings.finish_reevaluation(conn, view, now=now)
    return FleetPass(totals, complete, resumed_after, chunks, clock.seconds, clock.longest)


def _read_chunk(store: Store, *, after: str, limit: int) -> list[findings.StampedInventory]:
    with store.read() as conn:  # a snapshot: never waits for, nor blocks, a writer
        return findings.read_chunk(conn, after=after, limit=limit)


class _Stopwatch:
    """Wall-clock seconds since creation, and the longest write transaction timed by it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.longest = 0.0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.longest = max(self.longest, time.perf_counter() - began)


# --- PatchFeed objects on their schedule -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedRefresh:
    """One PatchFeed that was due, and what its run did."""

    feed: str  # tenant/name
    result: str  # ok | partial (some documents failed) | failed (nothing imported)
    message: str = ""
    outcome: ImportOutcome | None = None
    fleet: findings.FleetEvaluation | None = field(default=None, compare=False)


def refresh_due_feeds(
    store: Store, desired: DesiredState, *, now: datetime, sources: FeedSources
) -> list[FeedRefresh]:
    """Import the PatchFeeds that are due, then re-evaluate the fleet once; never raises for a
    bad feed (see the module docstring). Repository sources are read at `desired.revision`.
    Returns one entry per feed that ran."""
    feeds = desired.feeds
    if not feeds:
        return []
    with store.read() as conn:
        statuses = _statuses(conn)
        interrupted = _interrupted(conn)
    due = [f for f in feeds if is_due(f, statuses.get(status_key(f)), now=now)]
    if not due:
        if interrupted:  # e.g. a restart midway: finish the pass rather than wait for a refresh
            _reevaluate_and_log(store, now=now)
        return []
    # Read every source before the write transaction: downloads must not hold the store's lock.
    revision = desired.revision
    read = [
        (feed, _read_source(feed, sources=sources, revision=revision, where=_where(desired, feed)))
        for feed in due
    ]
    with store.write() as conn:
        runs = [
            _import_one(conn, feed, result, failure, statuses, now=now)
            for feed, (result, failure) in read
        ]
    fleet = _reevaluate_and_log(store, now=now)
    return [FeedRefresh(r.feed, r.result, r.message, r.outcome, fleet) for r in runs]


def _reevaluate_and_log(store: Store, *, now: datetime) -> findings.FleetEvaluation | None:
    """The service's fleet pass when pending, with progress lines and one summary line."""
    fleet = reevaluate_if_pending(store, now=now, on_progress=progress_logger())
    if fleet is None:
        return None
    log.info(
        "fleet re-evaluated",
        seconds=round(fleet.seconds, 3),
        chunks=fleet.chunks,
        longest_write_seconds=round(fleet.longest_write, 3),
        complete=fleet.complete,
        resumed_after=fleet.resumed_after or None,
        **fleet.evaluation.as_dict(),
    )
    return fleet.evaluation


PROGRESS_LOG_EVERY = 10.0  # seconds between two progress lines of the service's fleet pass


def progress_logger(every: float = PROGRESS_LOG_EVERY) -> ProgressCallback:
    """A progress callback that logs `fleet re-evaluation progress` at most once per `every`
    seconds (the first after `every`): a pass of a few seconds logs only its summary."""
    last = time.perf_counter()

    def log_progress(progress: Progress) -> None:
        nonlocal last
        if time.perf_counter() - last < every:
            return
        last = time.perf_counter()
        log.info(
            "fleet re-evaluation progress",
            devices=progress.done,
            total=progress.total,
            per_second=round(progress.rate),
            longest_write_seconds=round(progress.longest_write, 3),
        )

    return log_progress


def status_key(feed: PatchFeed) -> str:
    return f"{STATUS_PREFIX}{feed.tenant or '*'}/{feed.name}"


def is_due(feed: PatchFeed, status: dict[str, Any] | None, *, now: datetime) -> bool:
    """Purely computational: never run, spec changed, or its interval has passed."""
    if not status or status.get("spec") != spec_digest(feed):
        return True
    last = _parse_time(status.get("lastRunAt"))
    if last is None:
        return True
    wait = feed.spec.refresh if status.get("result") != "failed" else RETRY_AFTER_FAILURE
    not_before = _parse_time(status.get("retryAt"))  # the server's Retry-After
    if not_before is not None and now < not_before:
        return False
    return now >= last + min(wait, feed.spec.refresh)


def spec_digest(feed: PatchFeed) -> str:
    """A digest of what decides the records (a changed source or release means a new run)."""
    spec = feed.spec.model_dump(mode="json")
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _statuses(conn: Connection) -> dict[str, dict[str, Any]]:
    found = status_store.values_with_prefix(conn, STATUS_PREFIX)
    return {key: value for key, value in found.items() if isinstance(value, dict)}


def _interrupted(conn: Connection) -> bool:
    """Whether a fleet pass was started for the catalogue and not finished (a missing record
    is not: a store from before chunked passes waits for its next import)."""
    progress = findings.read_reevaluation(conn)
    return progress is not None and progress.pending(catalogue.catalogue_version(conn))


def _import_one(
    conn: Connection,
    feed: PatchFeed,
    result: FeedResult | None,
    failure: FeedSourceError | None,
    statuses: dict[str, dict[str, Any]],
    *,
    now: datetime,
) -> FeedRefresh:
    key = status_key(feed)
    previous = statuses.get(key) or {}
    outcome = None
    if result is not None:
        counts = catalogue.upsert_records(conn, result.records, now=now)
        outcome = ImportOutcome(
            len(result.records),
            counts.new,
            counts.updated,
            counts.unchanged,
            result.errors,
            warnings=result.warnings,
            failed=result.failed,
        )
    state, message = _verdict(outcome, str(failure) if failure else None)
    message = redact_text(message)
    status: dict[str, Any] = {
        "spec": spec_digest(feed),
        "source": redact_url(feed.spec.source) if "://" in feed.spec.source else feed.spec.source,
        "format": feed.spec.format.value,
        "lastRunAt": now.isoformat(),
        "lastSuccessAt": now.isoformat() if state != "failed" else previous.get("lastSuccessAt"),
        "result": state,
        "message": message,
    }
    if outcome is not None:
        status["counts"] = {
            k: v for k, v in outcome.as_dict().items() if k not in {"errors", "warnings", "fleet"}
        }
        status["errors"] = [redact_text(str(e)) for e in outcome.errors[:MAX_ERRORS_KEPT]]
        status["warnings"] = [redact_text(str(w)) for w in outcome.warnings[:MAX_ERRORS_KEPT]]
    if (wait := _server_wait(failure)) is not None:
        status["retryAt"] = (now + min(wait, MAX_SERVER_WAIT)).isoformat()
    if state == "ok":
        status["failingSince"] = None
    else:
        status["failingSince"] = previous.get("failingSince") or now.isoformat()
        _alert(conn, feed, key, status, now=now)
    status_store.set_status(conn, key, status, now=now)
    log.info("feed refreshed", feed=key, result=state, message=message)
    return FeedRefresh(f"{feed.tenant or '*'}/{feed.name}", state, message, outcome)


def _server_wait(failure: FeedSourceError | None) -> timedelta | None:
    """The wait a wait-until failure names (a server's `Retry-After`), else None: other
    failures are run again after `RETRY_AFTER_FAILURE` (`is_due`)."""
    if failure is None or errors.kind_of(failure) is not errors.Kind.WAIT_UNTIL:
        return None
    return errors.retry_after_of(failure)


def _verdict(outcome: ImportOutcome | None, failure: str | None) -> tuple[str, str]:
    if outcome is None:
        return "failed", failure or "not read"
    if outcome.errors and not outcome.records:
        return "failed", f"{len(outcome.errors)} error(s), nothing imported: {outcome.errors[0]}"
    if outcome.errors:
        return "partial", f"{len(outcome.errors)} error(s), the rest imported: {outcome.errors[0]}"
    message = f"{outcome.records} records: {outcome.new} new, {outcome.updated} updated"
    if outcome.warnings:
        message += f"; {len(outcome.warnings)} warning(s): {outcome.warnings[0]}"
    return "ok", message


def _alert(
    conn: Connection, feed: PatchFeed, key: str, status: dict[str, Any], *, now: datetime
) -> None:
    """One alert per failure streak: the streak's start is in the dedupe key."""
    alert_store.add_alert(
        conn,
        alert_store.NewAlert(
            kind=FEED_FAILED,
            severity=AlertSeverity.WARNING.value,
            message=f"PatchFeed {key.removeprefix(STATUS_PREFIX)}: {status['message']}",
            tenant=feed.tenant,
            details={
                "feed": key.removeprefix(STATUS_PREFIX),
                "source": status["source"],
                "errors": status.get("errors", []),
            },
            dedupe_key=AlertKey.of(
                EventType.FEED_FAILED, key.removeprefix(STATUS_PREFIX), str(status["failingSince"])
            ).format(),
        ),
        now=now,
    )


# --- reading a source --------------------------------------------------------------------------


def _read_source(
    feed: PatchFeed, *, sources: FeedSources, revision: str | None, where: str
) -> tuple[FeedResult | None, FeedSourceError | None]:
    """The feed's records, or None and why not (located at the PatchFeed's file and line).
    Never raises."""
    try:
        with sources.open(feed.spec.source, revision=revision) as path:
            return read_feed(
                path, feed.spec.format, release=feed.spec.release, label=_label(feed)
            ), None
    except FeedSourceError as exc:
        located = f"{where}spec.source: {exc}"
        return None, FeedSourceError(located, permanent=exc.permanent, retry_after=exc.retry_after)
    except Exception as exc:  # noqa: BLE001 - one bad feed must not stop the others
        log.warning("feed import crashed", feed=status_key(feed), error=repr(exc))
        return None, FeedSourceError(f"import failed: {exc!r}", permanent=False)


def _where(desired: DesiredState, feed: PatchFeed) -> str:
    """`policies/feeds/osv.yaml:3: ` where the PatchFeed is defined; empty when unknown."""
    origin = desired.origins.get(feed.key)
    return f"{origin.path}:{origin.line}: " if origin is not None else ""


def _label(feed: PatchFeed) -> str:
    """How errors name the source's files: its repository path, or its redacted URL."""
    return redact_url(feed.spec.source) if "://" in feed.spec.source else feed.spec.source


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def summaries(runs: Sequence[FeedRefresh]) -> list[dict[str, Any]]:
    """JSON-ready lines for a log or a status page."""
    return [
        {
            "feed": run.feed,
            "result": run.result,
            "message": run.message,
            **({"counts": run.outcome.as_dict()} if run.outcome else {}),
        }
        for run in runs
    ]
