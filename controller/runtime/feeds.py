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

Where a source is read: an http(s) URL is downloaded (a single file, at most `MAX_DOWNLOAD`
bytes) under `<state dir>/feeds/`; a relative path is a path in the policy repository
(`repo_root`, and it may not leave it), else in the current directory; an absolute path is a
local path.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
import structlog

from controller.feeds import read_feed
from controller.feeds.common import FeedError, FeedResult
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
MAX_DOWNLOAD = 256 * 1024 * 1024  # the importers refuse larger documents anyway
DOWNLOAD_TIMEOUT = 60.0
MAX_ERRORS_KEPT = 20  # per feed in its status; the count says how many there were
FEED_FAILED = "FeedFailed"  # alert kind (no EventType yet: visible in alerts, not notified)


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
    store: Store,
    desired: DesiredState,
    *,
    now: datetime,
    state_dir: Path,
    repo_root: Path | None = None,
) -> list[FeedRefresh]:
    """Import the PatchFeeds that are due, then re-evaluate the fleet once; never raises for a
    bad feed (see the module docstring). Returns one entry per feed that ran."""
    feeds = desired.feeds
    if not feeds:
        return []
    with store.read() as conn:
        statuses = _statuses(conn)
    due = [f for f in feeds if is_due(f, statuses.get(status_key(f)), now=now)]
    if not due:
        return []
    # Read every source before the write transaction: downloads must not hold the store's lock.
    read = [(feed, _read_source(feed, state_dir=state_dir, repo_root=repo_root)) for feed in due]
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
    failure: str | None,
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
    state, message = _verdict(outcome, failure)
    status: dict[str, Any] = {
        "spec": spec_digest(feed),
        "source": feed.spec.source,
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
        status["errors"] = [str(e) for e in outcome.errors[:MAX_ERRORS_KEPT]]
        status["warnings"] = [str(w) for w in outcome.warnings[:MAX_ERRORS_KEPT]]
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
            severity="warning",
            message=f"PatchFeed {key.removeprefix(STATUS_PREFIX)}: {status['message']}",
            tenant=feed.tenant,
            details={
                "feed": key.removeprefix(STATUS_PREFIX),
                "source": feed.spec.source,
                "errors": status.get("errors", []),
            },
            dedupe_key=f"{FEED_FAILED}:{key.removeprefix(STATUS_PREFIX)}:{status['failingSince']}",
        ),
        now=now,
    )


# --- reading a source --------------------------------------------------------------------------


class FeedSourceError(Exception):
    """The feed's source cannot be read at all; the message says which and why."""


def _read_source(
    feed: PatchFeed, *, state_dir: Path, repo_root: Path | None
) -> tuple[FeedResult | None, str | None]:
    """The feed's records, or None and why not. Never raises."""
    try:
        path = locate(feed.spec.source, state_dir=state_dir, repo_root=repo_root)
        result = read_feed(path, feed.spec.format, release=feed.spec.release)
    except FeedSourceError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad feed must not stop the others
        log.warning("feed import crashed", feed=status_key(feed), error=repr(exc))
        return None, f"import failed: {exc!r}"
    return result, None


def locate(source: str, *, state_dir: Path, repo_root: Path | None) -> Path:
    """The local file or directory of a source, downloading a URL first."""
    if source.startswith(("http://", "https://")):
        return download(source, target_dir=state_dir / "feeds")
    path = Path(source)
    if path.is_absolute():
        return path
    base = (repo_root or Path.cwd()).resolve()
    resolved = (base / path).resolve()
    if repo_root is not None and not resolved.is_relative_to(base):
        raise FeedSourceError(f"source {source!r} leaves the repository")
    return resolved


def download(url: str, *, target_dir: Path) -> Path:
    """Fetch `url` to a file named like the URL's last path segment (the importers recognise
    files by name: `…Packages.gz`, `…updateinfo.xml`), replaced only once complete."""
    name = PurePosixPath(urlsplit(url).path).name or "feed"
    folder = target_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.partial"
    try:
        problem = _fetch(url, partial)
    except httpx.HTTPError as exc:
        problem = str(exc)
    if problem is not None:
        partial.unlink(missing_ok=True)
        raise FeedSourceError(f"GET {_redact(url)}: {problem}")
    partial.replace(target)
    return target


def _fetch(url: str, into: Path) -> str | None:
    """Stream `url` into a file; the problem, or None when the whole body arrived."""
    with (
        httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as answer,
        into.open("wb") as out,
    ):
        if answer.status_code != httpx.codes.OK:
            return f"HTTP {answer.status_code}"
        size = 0
        for chunk in answer.iter_bytes():
            size += len(chunk)
            if size > MAX_DOWNLOAD:
                return f"larger than {MAX_DOWNLOAD} bytes"
            out.write(chunk)
    return None


def _redact(url: str) -> str:
    """No credentials nor query string (tokens) in messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="").geturl()


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
