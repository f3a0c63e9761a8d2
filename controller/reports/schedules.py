"""When ReportSchedules run, and which reports one run writes.

Purely computational, no side effects: the service keeps `last_runs` (schedule key → the last
run, or when the schedule was first seen) in the status table and asks `due_reports` at every
tick; a schedule seen for the first time waits for its next start instead of running at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from controller.core import windows
from controller.kinds.reports import ReportSchedule, ReportScope
from controller.reports import files
from controller.reports.model import ReportData, narrow


def schedule_key(schedule: ReportSchedule) -> str:
    """`tenant/name` (`*/name` for a schedule of every tenant): how runs are remembered."""
    return f"{schedule.tenant or '*'}/{schedule.name}"


def due_reports(
    schedules: Iterable[ReportSchedule], last_runs: Mapping[str, datetime], now: datetime
) -> tuple[ReportSchedule, ...]:
    """The schedules with a start in (last run, now], in key order.

    A schedule missing from `last_runs` is not due: record it with `track_runs` first.
    """
    due = [
        schedule
        for schedule in schedules
        if (last := last_runs.get(schedule_key(schedule))) is not None
        and windows.due_since(schedule.spec.recurrence, schedule.spec.timezone, last=last, now=now)
    ]
    return tuple(sorted(due, key=schedule_key))


def track_runs(
    schedules: Iterable[ReportSchedule],
    last_runs: Mapping[str, datetime],
    now: datetime,
    *,
    ran: Iterable[str] = (),
) -> dict[str, datetime]:
    """The `last_runs` to keep: schedules that `ran` and new ones at `now`, removed ones dropped."""
    done = set(ran)
    kept: dict[str, datetime] = {}
    for schedule in schedules:
        key = schedule_key(schedule)
        previous = last_runs.get(key)
        kept[key] = now if key in done or previous is None else previous
    return dict(sorted(kept.items()))


def next_run(schedule: ReportSchedule, *, after: datetime) -> datetime | None:
    """The schedule's next start after `after` (for status)."""
    return windows.next_start(schedule.spec.recurrence, schedule.spec.timezone, after=after)


def report_scopes(schedule: ReportSchedule, tenants: Iterable[str]) -> tuple[str | None, ...]:
    """The tenant scopes one run collects: its own tenant, or each known tenant for a schedule
    of every tenant with `scope: tenant` (partners cover their clients); None is every tenant."""
    if schedule.tenant is not None:
        return (schedule.tenant,)
    if schedule.spec.scope is ReportScope.TENANT:
        known = sorted(set(tenants))
        return tuple(known) or (None,)
    return (None,)


def split(data: ReportData, scope: ReportScope) -> dict[str, ReportData]:
    """File stem → report: the whole report, or one per baseline or per device."""
    if scope is ReportScope.TENANT:
        return {files.DEFAULT_STEM: data}
    if scope is ReportScope.BASELINE:
        return {
            files.baseline_stem(summary.baseline): narrow(data, baseline=summary.baseline)
            for summary in data.baselines
        }
    devices: dict[str, tuple[str, str]] = {}
    for row in data.devices:
        devices.setdefault(row.device_id, (row.tenant, row.device))
    return {
        files.device_stem(tenant, device): narrow(data, device_id=device_id)
        for device_id, (tenant, device) in sorted(devices.items(), key=lambda kv: kv[1])
    }


def schedule_files(reports: Sequence[ReportData], schedule: ReportSchedule) -> dict[str, bytes]:
    """Every file one run of `schedule` writes for the reports it collected."""
    out: dict[str, bytes] = {}
    for data in reports:
        for stem, piece in split(data, schedule.spec.scope).items():
            out.update(files.report_files(piece, schedule.spec.formats, stem=stem))
    return out
