"""Feed imports as the runtime runs them: into the catalogue, then over the whole fleet.

- `import_records`: one transaction that upserts a feed's records into the catalogue and, when
  the catalogue changed, recomputes the feed findings of every device with a stored inventory
  (`controller.store.findings.reevaluate_fleet`): a new advisory reaches the whole fleet without
  waiting for agents. `patchctl feed import` calls it.
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

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from controller.core.ids import AlertKey
from controller.feeds import read_feed
from controller.feeds.common import FeedError, FeedResult
from controller.kinds.notifications import AlertSeverity, EventType
from controller.redaction import redact_text, redact_url
from controller.runtime.feedsources import FeedSourceError, FeedSources
from controller.store import catalogue, findings, history, schema

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

    from controller.core.desired import DesiredState
    from controller.kinds.feeds import PatchFeed
    from controller.store import Store

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": len(self.errors),
            "errors": [str(e) for e in self.errors],
            "warnings": [str(w) for w in self.warnings],
            "fleet": self.fleet.as_dict() if self.fleet is not None else None,
        }


def import_records(store: Store, result: FeedResult, *, now: datetime) -> ImportOutcome:
    """Upsert a feed's records and re-evaluate the fleet, in one transaction."""
    with store.write() as conn:
        counts = catalogue.upsert_records(conn, result.records, now=now)
        fleet = _reevaluate(conn, now=now) if counts.new or counts.updated else None
    return ImportOutcome(
        records=len(result.records),
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        errors=result.errors,
        fleet=fleet,
        warnings=result.warnings,
    )


def reevaluate_fleet(store: Store, *, now: datetime) -> findings.FleetEvaluation:
    """Recompute every device's feed findings against the current catalogue (one transaction)."""
    with store.write() as conn:
        return _reevaluate(conn, now=now)


def _reevaluate(conn: Connection, *, now: datetime) -> findings.FleetEvaluation:
    # No log line here: `patchctl feed import --json` prints to stdout, and the counts are
    # returned to the caller, which reports them (serve logs them in `refresh_due_feeds`).
    return findings.reevaluate_fleet(conn, now=now)


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
    due = [f for f in feeds if is_due(f, statuses.get(status_key(f)), now=now)]
    if not due:
        return []
    # Read every source before the write transaction: downloads must not hold the store's lock.
    revision = desired.revision
    read = [
        (feed, _read_source(feed, sources=sources, revision=revision, where=_where(desired, feed)))
        for feed in due
    ]
    runs: list[FeedRefresh] = []
    with store.write() as conn:
        changed = False
        for feed, (result, failure) in read:
            run = _import_one(conn, feed, result, failure, statuses, now=now)
            changed = changed or bool(run.outcome and (run.outcome.new or run.outcome.updated))
            runs.append(run)
        started = time.perf_counter()
        fleet = _reevaluate(conn, now=now) if changed else None
    if fleet is not None:
        seconds = round(time.perf_counter() - started, 3)
        log.info("fleet re-evaluated", seconds=seconds, **fleet.as_dict())
    return [FeedRefresh(r.feed, r.result, r.message, r.outcome, fleet) for r in runs]


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
    s = schema.status.c
    rows = conn.execute(sa.select(s.key, s.value).where(s.key.startswith(STATUS_PREFIX)))
    return {row.key: row.value for row in rows if isinstance(row.value, dict)}


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
    if failure is not None and failure.retry_after is not None:
        status["retryAt"] = (now + min(failure.retry_after, MAX_SERVER_WAIT)).isoformat()
    if state == "ok":
        status["failingSince"] = None
    else:
        status["failingSince"] = previous.get("failingSince") or now.isoformat()
        _alert(conn, feed, key, status, now=now)
    history.set_status(conn, key, status, now=now)
    log.info("feed refreshed", feed=key, result=state, message=message)
    return FeedRefresh(f"{feed.tenant or '*'}/{feed.name}", state, message, outcome)


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
    history.add_alert(
        conn,
        history.NewAlert(
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
        return None, FeedSourceError(f"{where}spec.source: {exc}", retry_after=exc.retry_after)
    except Exception as exc:  # noqa: BLE001 - one bad feed must not stop the others
        log.warning("feed import crashed", feed=status_key(feed), error=repr(exc))
        return None, FeedSourceError(f"import failed: {exc!r}")


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
