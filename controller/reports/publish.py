"""One report run: collect → render → write to a directory and/or commit to the reports branch,
and the `ReportPublished` events that tell the Notification channels about it.

`run_schedule` is what the service calls for each ReportSchedule `due_reports` returns;
`patchctl report` calls `collect_reports` and `publish` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.kinds.notifications import AlertSeverity, EventType
from controller.kinds.reports import ReportSchedule
from controller.notify.events import Attachment, Event
from controller.reports import files as report_paths
from controller.reports import schedules
from controller.reports.collect import collect
from controller.reports.html import render_html
from controller.reports.model import ReportData
from controller.reports.render import render_summary, stamp
from controller.reports.writeback import (
    DEFAULT_BRANCH,
    CommitResult,
    commit_message,
    commit_reports,
    write_reports,
)
from controller.store import Store, tokens


@dataclass(frozen=True, slots=True)
class WritebackTarget:
    """Where reports are committed: a repository (path or URL) and its reports branch."""

    repo: str
    branch: str = DEFAULT_BRANCH
    policy_branch: str | None = None  # the branch being reconciled: never written to
    push: bool = True


@dataclass(frozen=True, slots=True)
class Publication:
    """What one run wrote."""

    reports: tuple[ReportData, ...]
    files: Mapping[str, bytes]
    written: tuple[Path, ...] = ()
    commit: CommitResult | None = None
    schedule: str | None = None  # the ReportSchedule's key; None for `patchctl report`

    @property
    def location(self) -> str:
        """Where a person finds the files, for messages."""
        places = []
        if self.commit is not None:
            state = self.commit.commit[:12] if self.commit.commit else "unchanged"
            places.append(f"branch {self.commit.branch} ({state})")
        if self.written:
            places.append(f"{len(self.written)} file(s) under {self.written[0].parent}")
        return ", ".join(places) or "not written"


def known_tenants(store: Store) -> list[str]:
    with store.read() as conn:
        return tokens.tenant_paths(conn)


def collect_reports(
    store: Store,
    scopes: Sequence[str | None],
    *,
    now: datetime,
    revision: str | None,
    pending_approvals: Mapping[str, Sequence[str]] | None = None,
) -> tuple[ReportData, ...]:
    """One report per tenant scope (keeping each scope's trend), in one write transaction."""
    with store.write() as conn:
        return tuple(
            collect(
                conn,
                tenant=scope,
                now=now,
                revision=revision,
                pending_approvals=pending_approvals,
            )
            for scope in scopes
        )


def publish(
    reports: Sequence[ReportData],
    files: Mapping[str, bytes],
    *,
    out_dir: Path | None = None,
    writeback: WritebackTarget | None = None,
    schedule: str | None = None,
) -> Publication:
    """Write the files to `out_dir` and/or commit them to the reports branch."""
    written = tuple(write_reports(out_dir, files)) if out_dir is not None else ()
    commit = None
    if writeback is not None and reports:
        first = reports[0]
        commit = commit_reports(
            writeback.repo,
            branch=writeback.branch,
            files=files,
            message=commit_message(
                first.revision, generated_at=first.generated_at, paths=len(files)
            ),
            push=writeback.push,
            policy_branch=writeback.policy_branch,
        )
    return Publication(tuple(reports), dict(files), written, commit, schedule)


def run_schedule(
    store: Store,
    schedule: ReportSchedule,
    *,
    now: datetime,
    revision: str | None,
    pending_approvals: Mapping[str, Sequence[str]] | None = None,
    out_dir: Path | None = None,
    writeback: WritebackTarget | None = None,
) -> Publication:
    """Collect, render and write the reports of one due ReportSchedule."""
    scopes = schedules.report_scopes(schedule, known_tenants(store))
    reports = collect_reports(
        store, scopes, now=now, revision=revision, pending_approvals=pending_approvals
    )
    return publish(
        reports,
        schedules.schedule_files(reports, schedule),
        out_dir=out_dir,
        writeback=writeback,
        schedule=schedules.schedule_key(schedule),
    )


def published_events(publication: Publication) -> tuple[Event, ...]:
    """One `ReportPublished` event per collected report: the Markdown summary as the body and
    the HTML report attached (email channels attach it)."""
    events = []
    for data in publication.reports:
        counts = data.counts
        scope = data.tenant or "*"
        name = report_paths.slug(data.tenant or "all-tenants")
        events.append(
            Event(
                key=f"report:{publication.schedule or 'manual'}:{scope}:{stamp(data.generated_at)}",
                type=EventType.REPORT_PUBLISHED,
                severity=AlertSeverity.INFO,
                message=(
                    f"compliance report for {data.scope}: {counts.compliant_percent:.1f}% "
                    f"compliant, {counts.non_compliant} non-compliant, {counts.unknown} unknown "
                    f"({data.revision or 'no applied revision'})"
                ),
                at=data.generated_at,
                tenant=data.tenant,
                details={
                    "schedule": publication.schedule,
                    "revision": data.revision,
                    "location": publication.location,
                    "commit": publication.commit.commit if publication.commit else None,
                },
                body=render_summary(data) + f"\nReports: {publication.location}.\n",
                attachments=(
                    Attachment(
                        f"compliance-{name}.html", "text/html", render_html(data).encode("utf-8")
                    ),
                ),
            )
        )
    return tuple(events)
