"""Reconcile runs: the bounded history of attempts (revision, duration, result, counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller.store import schema

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection


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
