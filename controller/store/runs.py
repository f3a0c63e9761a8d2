"""Reconcile runs: the bounded history of attempts (revision, duration, result, counts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.core.conditions import ReconcileResult
from controller.store import schema

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection


APPLIED = ReconcileResult.APPLIED.value


def record_reconcile_run(
    conn: Connection,
    *,
    started_at: datetime,
    finished_at: datetime | None,
    revision: str | None,
    result: str,
    counts: dict[str, int] | None = None,
    message: str = "",
) -> None:
    duration = (
        int((finished_at - started_at).total_seconds() * 1000) if finished_at is not None else None
    )
    conn.execute(
        schema.reconcile_runs.insert().values(
            started_at=started_at,
            finished_at=finished_at,
            revision=revision,
            result=result,
            duration_ms=duration,
            counts=counts or {},
            message=message,
        )
    )


def list_reconcile_runs(conn: Connection, *, limit: int = 10) -> list[dict[str, Any]]:
    r = schema.reconcile_runs.c
    rows = conn.execute(
        sa.select(
            r.started_at, r.finished_at, r.revision, r.result, r.duration_ms, r.counts, r.message
        )
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in rows.mappings()]


@dataclass(frozen=True, slots=True)
class DurationBuckets:
    """Reconcile runs of one result: how many, their summed duration (ms) and, per bound of
    the histogram asked for, how many took at most that many seconds."""

    result: str
    count: int
    total_ms: int
    in_bucket: tuple[int, ...]


def duration_histogram(conn: Connection, bounds: Sequence[float]) -> list[DurationBuckets]:
    """Runs with a duration, grouped by result (in result order), counted per bucket of
    `bounds` (seconds, cumulative like Prometheus' `le`) in the database."""
    r = schema.reconcile_runs.c
    seconds = r.duration_ms / 1000.0
    buckets = [
        sa.func.sum(sa.case((seconds <= bound, 1), else_=0)).label(f"le{i}")
        for i, bound in enumerate(bounds)
    ]
    rows = conn.execute(
        sa.select(r.result, sa.func.count(), sa.func.sum(r.duration_ms), *buckets)
        .where(r.duration_ms.is_not(None))
        .group_by(r.result)
        .order_by(r.result)
    ).all()
    return [
        DurationBuckets(
            result=row[0],
            count=int(row[1]),
            total_ms=int(row[2] or 0),
            in_bucket=tuple(int(n or 0) for n in row[3:]),
        )
        for row in rows
    ]


def last_applied_at(conn: Connection) -> datetime | None:
    """When the last run that applied a revision finished; None when none has."""
    r = schema.reconcile_runs.c
    found = conn.execute(sa.select(sa.func.max(r.finished_at)).where(r.result == APPLIED))
    value = found.scalar()
    return value if isinstance(value, datetime) else None


def applied_since(conn: Connection) -> datetime | None:
    """When the revision applied last was first applied after the one before it."""
    r = schema.reconcile_runs.c
    current = conn.execute(
        sa.select(r.revision)
        .where(r.result == APPLIED, r.revision.is_not(None))
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(1)
    ).scalar()
    if current is None:
        return None
    before = conn.execute(
        sa.select(sa.func.max(r.started_at)).where(
            r.result == APPLIED, r.revision.is_not(None), r.revision != current
        )
    ).scalar()
    query = sa.select(sa.func.min(r.finished_at)).where(r.result == APPLIED, r.revision == current)
    if before is not None:
        query = query.where(r.started_at > before)
    first = conn.execute(query).scalar()
    return first if isinstance(first, datetime) else None


def revisions(conn: Connection) -> list[str]:
    """Every revision a run has recorded, sorted."""
    r = schema.reconcile_runs.c
    rows = conn.execute(sa.select(r.revision).distinct().where(r.revision.is_not(None)))
    return sorted(str(revision) for (revision,) in rows)
