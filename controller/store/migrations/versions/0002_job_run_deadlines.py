"""Run deadlines for started jobs: when the agent started a job, how long it may run, and why
and from which state the controller ended it (`timed-out`, `no-agent`, `re-enrolled`, ...).

Jobs started before this revision get their start from their first acked-or-later event (else
their last update), so the planner can time out jobs that were already stuck.

Revision ID: 0002_job_run_deadlines
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_job_run_deadlines"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # frozen copy of the schema's type at this revision
_STARTED = ("acked", "downloading", "installing", "rebooting")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("started_at", UTC_TIME, nullable=True))
    op.add_column("jobs", sa.Column("run_timeout", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("end_reason", sa.String(length=64), nullable=True))
    op.add_column("jobs", sa.Column("end_state", sa.String(length=16), nullable=True))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("state", sa.String()),
        sa.column("updated_at", UTC_TIME),
        sa.column("started_at", UTC_TIME),
    )
    events = sa.table(
        "job_events",
        sa.column("job_id", sa.String()),
        sa.column("state", sa.String()),
        sa.column("received_at", UTC_TIME),
    )
    first_start = (
        sa.select(sa.func.min(events.c.received_at))
        .where(events.c.job_id == jobs.c.id, events.c.state.in_(_STARTED))
        .scalar_subquery()
    )
    op.execute(
        jobs.update()
        .where(jobs.c.state.in_(_STARTED))
        .values(started_at=sa.func.coalesce(first_start, jobs.c.updated_at))
    )


def downgrade() -> None:
    for column in ("end_state", "end_reason", "run_timeout", "started_at"):
        op.drop_column("jobs", column)
