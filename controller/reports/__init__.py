"""Compliance reports: a pure model (`ReportData`), renderers and the writers.

`collect` reads a report out of the store; `render_json`, `render_csv`, `render_markdown` and
`render_html` turn it into text; `write_reports` and `commit_reports` put the files in a
directory or on a reports branch; `due_reports` says which ReportSchedules are due.
"""

from controller.reports.collect import collect, pending_from_plan
from controller.reports.files import render, report_files
from controller.reports.html import render_html
from controller.reports.model import ReportData, narrow
from controller.reports.render import render_csv, render_json, render_markdown, render_summary
from controller.reports.schedules import due_reports, track_runs
from controller.reports.writeback import (
    CommitResult,
    WritebackError,
    commit_message,
    commit_reports,
    write_reports,
)

__all__ = [
    "CommitResult",
    "ReportData",
    "WritebackError",
    "collect",
    "commit_message",
    "commit_reports",
    "due_reports",
    "narrow",
    "pending_from_plan",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_summary",
    "report_files",
    "track_runs",
    "write_reports",
]
