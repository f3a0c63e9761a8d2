"""Which files a report becomes: one per format, at a path derived from its tenant.

Purely computational. Layout (relative to the output directory or the reports branch):

- every tenant: `compliance.<ext>`;
- one tenant (with its clients): `tenants/<tenant>/compliance.<ext>`, e.g.
  `tenants/acme/retail/compliance.md`;
- a report narrowed to a baseline or a device (ReportSchedule `scope: baseline | device`):
  `.../baselines/<baseline>.<ext>` and `.../devices/<tenant>.<device>.<ext>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from controller.kinds.reports import ReportFormat
from controller.reports.html import render_html
from controller.reports.model import ReportData, baseline_name
from controller.reports.render import render_csv, render_json, render_markdown

EXTENSIONS = {
    ReportFormat.MARKDOWN: "md",
    ReportFormat.CSV: "csv",
    ReportFormat.HTML: "html",
    ReportFormat.JSON: "json",
}
DEFAULT_STEM = "compliance"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def render(data: ReportData, report_format: ReportFormat) -> bytes:
    """The report in one format, as UTF-8 bytes."""
    renderers = {
        ReportFormat.MARKDOWN: render_markdown,
        ReportFormat.CSV: render_csv,
        ReportFormat.HTML: render_html,
        ReportFormat.JSON: render_json,
    }
    return renderers[report_format](data).encode("utf-8")


def directory(tenant: str | None) -> str:
    """Where a scope's reports live, relative to the reports root ('' for every tenant)."""
    return f"tenants/{tenant}/" if tenant else ""


def slug(text: str) -> str:
    """A file-name-safe form of a baseline or device name (`/` becomes `.`, never in a name)."""
    cleaned = _UNSAFE.sub("_", text.lower().replace("/", ".").replace("*", "_all"))
    return cleaned.strip(".") or "_"


def baseline_stem(baseline: str) -> str:
    return f"baselines/{slug(baseline_name(baseline))}"


def device_stem(tenant: str, device: str) -> str:
    return f"devices/{slug(tenant)}.{slug(device)}"


def report_files(
    data: ReportData, formats: Iterable[ReportFormat], *, stem: str = DEFAULT_STEM
) -> dict[str, bytes]:
    """Relative path → content for each requested format (duplicates ignored)."""
    base = directory(data.tenant) + stem
    return {f"{base}.{EXTENSIONS[fmt]}": render(data, fmt) for fmt in dict.fromkeys(formats)}
