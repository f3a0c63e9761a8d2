"""Jobs: issuing (idempotent on the deterministic id), delivery to agents, agent events, the
controller's endings (expiry, time-out, release on re-enrolment), listings.

Delivery is at-least-once: a job stays in every poll answer of its device until the agent
acknowledges it (or sends any later state), and each poll counts a delivery. The first event
that starts a job (acked or later) stamps `started_at`, from which its run deadline counts
(`controller.core.jobs.run_deadline`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core.jobs import (
    DELIVERABLE_STATES,
    ENDINGS,
    STARTED_STATES,
    TERMINAL_STATES,
    EndReason,
    EventVerdict,
    dedupe_key,
    evaluate_event,
)
from controller.core.observed import JobKind, JobState
from controller.store import changes, database, schema
from controller.store.scopes import in_scope, is_device, mentions

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection

MAX_OUTPUT_CHARS = 64 * 1024  # of a job's output kept on the job (events keep their own)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A job as the planner issues it."""

    id: str
    device_id: str
    tenant: str
    kind: JobKind
    revision: str
    patch_ids: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)  # reboot option, scripts, ...
    window_key: str | None = None
    deadline: datetime | None = None
    run_timeout_s: int | None = None  # seconds from the agent's start to a final state


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """One state report of an agent about a job."""

    state: JobState
    seq: int | None = None
    patches: tuple[dict[str, Any], ...] = ()  # {id, result, reason?}
    reboot_required: bool | None = None
    output: str | None = None

    def content(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "patches": list(self.patches),
            "rebootRequired": self.reboot_required,
            "output": self.output,
        }


class EventStatus(StrEnum):
    APPLIED = "applied"  # the job moved to the reported state
    PROGRESS = "progress"  # recorded; the state was already the reported one
    DUPLICATE = "duplicate"  # a replay: nothing changed
    NOT_FOUND = "not-found"  # no such job for this device
    ILLEGAL = "illegal"  # refused: the transition is not allowed
    INVALID = "invalid"  # refused: a patch result names a patch the job does not carry


@dataclass(frozen=True, slots=True)
class EventResult:
    status: EventStatus
    state: JobState | None
    message: str = ""
    fault_field: str | None = None  # the event's field at fault (`INVALID`), as the API names it
    # whether the event changed what the planner reads of the job: its state, or the patch
    # results of a progress event (a failed patch counts against a rollout's failure budget
    # while the job still runs: `core.plan._Ledger`)
    replans: bool = False


def insert_jobs(conn: Connection, new_jobs: Sequence[NewJob], *, now: datetime) -> int:
    """Issue jobs; an id that exists already (or twice in `new_jobs`) is left alone. Returns
    how many were new."""
    if not new_jobs:
        return 0
    # One plain executemany, counted by the driver. An INSERT ... RETURNING (to learn which
    # rows were new) runs as one multi-row statement per few dozen rows, compiled and bound in
    # Python: about three times the cost at the 10,000 jobs of an approval (issue 14). A job
    # left out as issued already still records its device as changed: one more re-plan. Of
    # an id twice in `new_jobs`, the first is inserted (the rows go in order).
    pending = JobState.PENDING.value
    # Values the jobs share are shared objects, which the insert encodes once each
    # (`database.insert_many`): the patch list of each distinct patch set, the empty results.
    patch_lists = {ids: list(ids) for ids in {job.patch_ids for job in new_jobs}}
    no_results: dict[str, Any] = {}
    rows = [
        {
            "id": job.id,
            "device_id": job.device_id,
            "tenant": job.tenant,
            "kind": job.kind.value,
            "patch_ids": patch_lists[job.patch_ids],
            "payload": job.payload,
            "state": pending,
            "revision": job.revision,
            "window_key": job.window_key,
            "deadline": job.deadline,
            "created_at": now,
            "updated_at": now,
            "results": no_results,
            "run_timeout": job.run_timeout_s,
        }
        for job in new_jobs
    ]
    # The columns a new job leaves empty (delivered_at, finished_at, output, ...) are not sent:
    # they default to NULL (deliveries to 0).
    inserted = database.insert_many(conn, schema.jobs, rows, skip_existing=True)
    changes.record_devices(conn, [job.device_id for job in new_jobs], now=now)
    return inserted


def deliverable_jobs(conn: Connection, device_id: str, *, now: datetime) -> list[dict[str, Any]]:
    """The jobs a device should run now: not yet acknowledged and not past their deadline."""
    j = schema.jobs.c
    rows = conn.execute(
        sa.select(
            j.id,
            j.kind,
            j.patch_ids,
            j.payload,
            j.state,
            j.revision,
            j.window_key,
            j.deadline,
            j.created_at,
            j.deliveries,
        )
        .where(
            j.device_id == device_id,
            j.state.in_([s.value for s in DELIVERABLE_STATES]),
            sa.or_(j.deadline.is_(None), j.deadline > now),
        )
        .order_by(j.created_at, j.id)
    )
    return [dict(row) for row in rows.mappings()]


def mark_delivered(conn: Connection, job_ids: Sequence[str], *, now: datetime) -> None:
    """Count a delivery of each job; the first one moves it from pending to delivered."""
    if not job_ids:
        return
    j = schema.jobs.c
    deliverable = [s.value for s in DELIVERABLE_STATES]
    delivered = conn.execute(
        schema.jobs.update()
        .where(j.id.in_(job_ids), j.state.in_(deliverable))
        .values(
            state=JobState.DELIVERED.value,
            deliveries=j.deliveries + 1,
            delivered_at=sa.func.coalesce(j.delivered_at, now),
            updated_at=now,
        )
        .returning(j.device_id)
    ).scalars()
    changes.record_devices(conn, delivered, now=now)


def record_event(
    conn: Connection, *, device_id: str, job_id: str, event: JobEvent, now: datetime
) -> EventResult:
    """Apply an agent's event to its job, idempotently; refuse illegal transitions, and patch
    results for patches the job does not carry (`INVALID`, naming the first: a result is
    counted as that patch's install, DESIGN.md §4; the reference agent answers one per job
    patch id)."""
    j = schema.jobs.c
    job = conn.execute(
        sa.select(j.state, j.results, j.started_at, j.patch_ids)
        .where(j.id == job_id, j.device_id == device_id)
        .with_for_update()
    ).first()
    if job is None:
        return EventResult(EventStatus.NOT_FOUND, None, f"no job {job_id!r} for this device")
    current = JobState(job.state)
    foreign = _foreign_result(event, job.patch_ids or (), job_id)
    if foreign is not None:
        return EventResult(EventStatus.INVALID, current, foreign[1], fault_field=foreign[0])
    key = dedupe_key(event.seq, event.content())
    e = schema.job_events.c
    replay = conn.execute(
        sa.select(e.id).where(e.job_id == job_id, e.state == event.state.value, e.dedupe_key == key)
    ).first()
    if replay is not None:
        return EventResult(EventStatus.DUPLICATE, current)
    verdict, reason = evaluate_event(current, event.state)
    if verdict is EventVerdict.ILLEGAL:
        return EventResult(EventStatus.ILLEGAL, current, reason)
    conn.execute(
        schema.job_events.insert().values(
            job_id=job_id,
            state=event.state.value,
            dedupe_key=key,
            received_at=now,
            patches=list(event.patches),
            reboot_required=event.reboot_required,
            output=event.output,
        )
    )
    conn.execute(schema.jobs.update().where(j.id == job_id).values(**_updated(job, event, now)))
    changes.record_devices(conn, [device_id], now=now)
    advance = verdict is EventVerdict.ADVANCE
    status = EventStatus.APPLIED if advance else EventStatus.PROGRESS
    # Progress in the same (unfinished) state: output, `updated_at` and the reboot signal are
    # read by the planner of finished jobs only; patch results are read while it runs.
    return EventResult(status, event.state, replans=advance or bool(event.patches))


def _updated(job: Any, event: JobEvent, now: datetime) -> dict[str, Any]:
    """The job row's new values after `event` (`job`: its state, results and start as read)."""
    values: dict[str, Any] = {"state": event.state.value, "updated_at": now}
    if event.patches:
        results = dict(job.results or {})
        for patch in event.patches:
            results[str(patch["id"])] = {k: v for k, v in patch.items() if k != "id"}
        values["results"] = results
    if event.reboot_required is not None:
        values["reboot_required"] = event.reboot_required
    if event.output is not None:
        values["output"] = event.output[-MAX_OUTPUT_CHARS:]
    if event.state in TERMINAL_STATES:
        values["finished_at"] = now
    if job.started_at is None and event.state in STARTED_STATES:
        values["started_at"] = now
    return values


def _foreign_result(
    event: JobEvent, patch_ids: Collection[str], job_id: str
) -> tuple[str, str] | None:
    """(field, message) for the first patch result of `event` whose id is not one of the
    job's `patch_ids`; None when every result is for one of them."""
    carried = set(patch_ids)
    for index, patch in enumerate(event.patches):
        if str(patch["id"]) not in carried:
            shown = ", ".join(sorted(carried)) or "none: it installs nothing"
            return (
                f"patches[{index}].id",
                f"{patch['id']!r} is not a patch of job {job_id!r} (its patches: {shown})",
            )
    return None


def end_jobs(
    conn: Connection,
    job_ids: Sequence[str],
    *,
    reason: EndReason,
    now: datetime,
    state: JobState | None = None,
    only_from: Collection[JobState] | None = None,
) -> int:
    """The controller ends jobs for `reason`: each of `job_ids` still in a state `reason` ends
    (an agent may have finished it meanwhile) moves to the state `reason` ends it in, keeping
    `reason` and the state it was in (`core.jobs.ENDINGS`). Returns how many moved.

    `only_from` narrows the states further (a cancel from the state the operator saw); `state`,
    when given, must be the table's. ValueError when either disagrees with `ENDINGS`."""
    reason = EndReason(reason)  # a caller's plain "timed-out" names the same reason
    ending = ENDINGS[reason]
    allowed = ending.from_states if only_from is None else frozenset(only_from)
    if (state is not None and state != ending.to_state) or not allowed <= ending.from_states:
        shown = ", ".join(s.value for s in sorted(allowed))
        raise ValueError(f"{reason.value} does not end jobs in {shown} as {state}")
    if not job_ids:
        return 0
    j = schema.jobs.c
    ended: list[str] = []
    for start in range(0, len(job_ids), _CHUNK):
        ended += conn.execute(
            schema.jobs.update()
            .where(
                j.id.in_(list(job_ids[start : start + _CHUNK])),
                j.state.in_([s.value for s in sorted(allowed)]),
            )
            # SET expressions read the row as it was: end_state gets the old state.
            .values(end_state=j.state, state=ending.to_state.value, end_reason=reason.value)
            .values(updated_at=now, finished_at=now)
            .returning(j.device_id)
        ).scalars()
    changes.record_devices(conn, ended, now=now)
    return len(ended)


def release_device_jobs(conn: Connection, device_id: str, *, now: datetime) -> int:
    """Release the started jobs of a device that enrolled again (`re-enrolled`): the new agent
    instance does not know them and will never report on them, so they fail, keeping the state
    they were in. Jobs not yet taken stay: they are delivered to the new instance (at least
    once, until acknowledged). Returns how many were released."""
    j = schema.jobs.c
    started = conn.execute(
        sa.select(j.id).where(
            j.device_id == device_id, j.state.in_([s.value for s in STARTED_STATES])
        )
    ).scalars()
    return end_jobs(conn, list(started), reason=EndReason.RE_ENROLLED, now=now)


_CHUNK = 500
_LISTED = (
    schema.jobs.c.id,
    schema.jobs.c.device_id,
    schema.jobs.c.tenant,
    schema.jobs.c.kind,
    schema.jobs.c.patch_ids,
    schema.jobs.c.payload,
    schema.jobs.c.state,
    schema.jobs.c.revision,
    schema.jobs.c.window_key,
    schema.jobs.c.deadline,
    schema.jobs.c.created_at,
    schema.jobs.c.updated_at,
    schema.jobs.c.delivered_at,
    schema.jobs.c.deliveries,
    schema.jobs.c.finished_at,
    schema.jobs.c.reboot_required,
    schema.jobs.c.results,
    schema.jobs.c.started_at,
    schema.jobs.c.run_timeout,
    schema.jobs.c.end_reason,
    schema.jobs.c.end_state,
)


def list_jobs(
    conn: Connection,
    *,
    scope: str | None,
    device_id: str | None = None,
    state: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Jobs of a tenant scope, newest first."""
    j = schema.jobs.c
    query = sa.select(*_LISTED).where(in_scope(j.tenant, scope))
    if device_id is not None:
        query = query.where(is_device(j.device_id, device_id))
    if state is not None:
        query = query.where(j.state == state)
    rows = conn.execute(query.order_by(j.created_at.desc(), j.id).limit(limit).offset(offset))
    return [dict(row) for row in rows.mappings()]


def get_job(conn: Connection, job_id: str) -> dict[str, Any] | None:
    j = schema.jobs.c
    row = conn.execute(sa.select(*_LISTED, j.output).where(j.id == job_id)).mappings().first()
    return dict(row) if row is not None else None


def job_events(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    """The events of a job in the order they arrived."""
    e = schema.job_events.c
    rows = conn.execute(
        sa.select(e.state, e.dedupe_key, e.received_at, e.patches, e.reboot_required, e.output)
        .where(e.job_id == job_id)
        .order_by(e.id)
    )
    return [dict(row) for row in rows.mappings()]


def jobs_carrying(
    conn: Connection, patch: str, *, scope: str | None, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` jobs whose patch list holds `patch` (exactly), oldest issued first, in
    `scope` (None: all) and updated at or after `since` (None: any time): tenant, revision, kind,
    state, patch_ids, results, created_at, updated_at, finished_at and the device's `name`."""
    j, d = schema.jobs.c, schema.devices.c
    statement = (
        sa.select(
            j.tenant,
            j.revision,
            j.kind,
            j.state,
            j.patch_ids,
            j.results,
            j.created_at,
            j.updated_at,
            j.finished_at,
            d.name,
        )
        .join_from(schema.jobs, schema.devices, j.device_id == d.id)
        .where(mentions(j.patch_ids, patch))
        .order_by(j.created_at)
        .limit(limit)
    )
    if scope is not None:
        statement = statement.where(in_scope(j.tenant, scope))
    if since is not None:
        statement = statement.where(j.updated_at >= since)
    rows = conn.execute(statement).mappings()
    return [dict(row) for row in rows if patch in (row["patch_ids"] or ())]


def count_by_state(conn: Connection, *, scope: str | None) -> dict[tuple[str, str, str], int]:
    """Jobs of `scope` (None: all) counted by (tenant, kind, state); terminal states included."""
    j = schema.jobs.c
    rows = conn.execute(
        sa.select(j.tenant, j.kind, j.state, sa.func.count())
        .where(in_scope(j.tenant, scope))
        .group_by(j.tenant, j.kind, j.state)
    )
    return {(tenant, kind, state): int(n) for tenant, kind, state, n in rows}


def count_failed_installs(conn: Connection, *, scope: str) -> dict[str, int]:
    """Install jobs of `scope` that ended failed, by tenant (in tenant order)."""
    j = schema.jobs.c
    rows = conn.execute(
        sa.select(j.tenant, sa.func.count())
        .where(in_scope(j.tenant, scope), j.kind == JobKind.INSTALL, j.state == JobState.FAILED)
        .group_by(j.tenant)
    )
    return {tenant: int(n) for tenant, n in sorted(rows, key=lambda r: r[0])}


def install_outcomes(
    conn: Connection, *, issued_since: datetime, scope: str | None
) -> list[tuple[str, Any, Any, int]]:
    """(state, patch_ids, results, jobs) of the install jobs of `scope` (None: all) issued at
    or after `issued_since`: each distinct (state, patch list, results) once, with how many
    jobs have it; the JSON values decoded. Grouped by the database: a month of installs at
    100,000 devices is 400,000 jobs, a few hundred distinct outcomes (decoding each job's
    results took 2.5 s of every status and dashboard read)."""
    j = schema.jobs.c
    patch_ids, results = sa.cast(j.patch_ids, sa.Text), sa.cast(j.results, sa.Text)
    rows = conn.execute(
        sa.select(j.state, patch_ids, results, sa.func.count())
        .where(j.kind == "install", j.created_at >= issued_since, in_scope(j.tenant, scope))
        .group_by(j.state, patch_ids, results)
    )
    return [(state, _json(ids), _json(outcome), int(n)) for state, ids, outcome, n in rows]


def install_results_by_day(
    conn: Connection, *, scope: str | None, start: datetime, end: datetime
) -> list[tuple[date, Any, int]]:
    """(UTC day, results, jobs) of the install jobs of `scope` (None: all) that ended
    succeeded or failed between `start` and `end` (both inclusive; ended: the end time, else
    the last update): each distinct (day, results) once with how many jobs have it, the
    results decoded. Grouped by the database, as `install_outcomes` is."""
    j = schema.jobs.c
    finished = sa.func.coalesce(j.finished_at, j.updated_at)
    day = _utc_day(finished, conn.dialect.name)
    results = sa.cast(j.results, sa.Text)
    rows = conn.execute(
        sa.select(day, results, sa.func.count())
        .where(
            j.kind == "install",
            j.state.in_(("succeeded", "failed")),
            in_scope(j.tenant, scope),
            finished >= start,
            finished <= end,
        )
        .group_by(day, results)
    )
    return [(_day(ended), _json(outcome), int(n)) for ended, outcome, n in rows]


def _utc_day(instant: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """The UTC calendar day of a `UtcDateTime` value: SQLite keeps it as UTC text
    (`YYYY-MM-DD HH:MM:SS...`, whose `date()` is the day), PostgreSQL as timestamptz (its day
    in UTC, whatever the session's time zone)."""
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", instant), sa.Date)
    return sa.func.date(instant)


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _json(text: str | None) -> Any:
    """A JSON column read as text, decoded (None for NULL)."""
    return None if text is None else json.loads(text)


_CHUNK = 500  # ids per IN (...) query, under every engine's parameter limit


def finished_install_results(conn: Connection, device_ids: Sequence[str]) -> list[tuple[str, Any]]:
    """(device id, results as stored) of the finished (succeeded or failed) install jobs of
    `device_ids`; each device's jobs oldest finished first (finished: the end time, else the
    last update; ties by job id), so a later result can overwrite an earlier one."""
    j = schema.jobs.c
    finished = sa.func.coalesce(j.finished_at, j.updated_at)
    found: list[tuple[str, Any]] = []
    for start in range(0, len(device_ids), _CHUNK):
        rows = conn.execute(
            sa.select(j.device_id, j.results)
            .where(
                j.device_id.in_(list(device_ids[start : start + _CHUNK])),
                j.kind == "install",
                j.state.in_(["succeeded", "failed"]),
            )
            .order_by(finished, j.id)
        )
        found.extend((row.device_id, row.results) for row in rows)
    return found
