"""Render a report as JSON, CSV or Markdown (HTML is in `controller.reports.html`).

Purely computational: `ReportData` in, text out; the same report renders to the same bytes.
Every output names the policy revision and the time the report was generated. Text that comes
from agents (device names, failure reasons) is escaped for the format it lands in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from controller.core.compliance import ComplianceState
from controller.kinds.common import Severity
from controller.reports.model import (
    STATE_ORDER,
    BaselineSummary,
    DeviceRow,
    Finding,
    ReportData,
    baseline_name,
)

API_VERSION = "patchctl/v1"
REPORT_KIND = "ComplianceReport"
MARKDOWN_MAX_ROWS = 500  # the CSV and JSON files hold every row; Markdown is for reading
TREND_ROWS = 14
STATE_LABELS = {
    ComplianceState.COMPLIANT: "compliant",
    ComplianceState.NON_COMPLIANT: "non-compliant",
    ComplianceState.UNKNOWN: "unknown",
}
CSV_COLUMNS = (
    "tenant",
    "device",
    "device_id",
    "os",
    "baseline",
    "state",
    "scanned_at",
    "missing_count",
    "failed_count",
    "worst_severity",
    "reboot_pending",
    "missing",
    "failed",
    "pending_reboot",
    "rejected",
    "evaluated_revision",
    "report_revision",
    "generated_at",
)


def stamp(moment: datetime | None) -> str | None:
    """An instant as ISO 8601 UTC with a `Z`, to the second."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def human_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def revision_text(data: ReportData) -> str:
    return data.revision or "no applied revision"


# --- JSON -----------------------------------------------------------------------------------


def to_document(data: ReportData) -> dict[str, Any]:
    """The report as JSON-ready values (what `render_json` writes)."""
    counts = data.counts
    pending = data.pending_approvals
    totals = data.installs_total
    return {
        "apiVersion": API_VERSION,
        "kind": REPORT_KIND,
        "tenant": data.tenant,
        "subject": data.subject,
        "revision": data.revision,
        "generatedAt": stamp(data.generated_at),
        "summary": {
            "devices": data.device_count,
            "compliantDevices": data.compliant_devices,
            "verdicts": {STATE_LABELS[s]: counts.of(s) for s in STATE_ORDER},
            "compliantPercent": counts.compliant_percent,
            "pendingApprovals": None if pending is None else sum(len(p.patches) for p in pending),
            "pendingReboots": len(data.pending_reboots),
            "installs": {"installed": totals.installed, "failed": totals.failed},
        },
        "baselines": [_baseline_document(b) for b in data.baselines],
        "devices": [_device_document(row) for row in data.devices],
        "pendingApprovals": None
        if pending is None
        else [
            {
                "device": p.device,
                "deviceId": p.device_id,
                "tenant": p.tenant,
                "patches": [*p.patches],
            }
            for p in pending
        ],
        "pendingReboots": [
            {
                "device": r.device,
                "deviceId": r.device_id,
                "tenant": r.tenant,
                "patches": [*r.patches],
                "since": stamp(r.since),
            }
            for r in data.pending_reboots
        ],
        "installs": [
            {"day": d.day.isoformat(), "installed": d.installed, "failed": d.failed}
            for d in data.installs
        ],
        "trend": [
            {"day": p.day.isoformat(), "compliantPercent": p.compliant_percent} for p in data.trend
        ],
    }


def _baseline_document(summary: BaselineSummary) -> dict[str, Any]:
    return {
        "baseline": summary.name,
        "compliant": summary.counts.compliant,
        "nonCompliant": summary.counts.non_compliant,
        "unknown": summary.counts.unknown,
        "compliantPercent": summary.counts.compliant_percent,
        "nonCompliantBySeverity": {s.value: n for s, n in summary.non_compliant_by_severity},
        "findingsBySeverity": {s.value: n for s, n in summary.findings_by_severity},
    }


def _device_document(row: DeviceRow) -> dict[str, Any]:
    return {
        "device": row.device,
        "deviceId": row.device_id,
        "tenant": row.tenant,
        "os": row.os,
        "baseline": baseline_name(row.baseline),
        "state": row.state.value,
        "scannedAt": stamp(row.scanned_at),
        "evaluatedAt": stamp(row.evaluated_at),
        "revision": row.revision,
        "installed": row.installed,
        "rebootPending": row.reboot_pending,
        "missing": [{"id": f.patch_id, "severity": f.severity.value} for f in row.missing],
        "failed": [
            {"id": f.patch_id, "severity": f.severity.value, "reason": f.reason} for f in row.failed
        ],
        "pendingReboot": [f.patch_id for f in row.pending_reboot],
        "rejected": [f.patch_id for f in row.rejected],
    }


def render_json(data: ReportData) -> str:
    """The whole report as one JSON document (stable key order, two-space indent)."""
    return json.dumps(to_document(data), indent=2, ensure_ascii=False) + "\n"


# --- CSV ------------------------------------------------------------------------------------


def render_csv(data: ReportData) -> str:
    """One row per device and baseline; every row carries the report's revision and time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    generated = stamp(data.generated_at)
    for row in data.devices:
        worst = row.worst_severity
        writer.writerow(
            [
                _cell(row.tenant),
                _cell(row.device),
                _cell(row.device_id),
                _cell(row.os),
                _cell(baseline_name(row.baseline)),
                row.state.value,
                stamp(row.scanned_at) or "",
                len(row.missing),
                len(row.failed),
                worst.value if worst else "",
                "yes" if row.reboot_pending else "no",
                _cell("; ".join(_finding_text(f) for f in row.missing)),
                _cell("; ".join(_finding_text(f, reason=True) for f in row.failed)),
                _cell("; ".join(f.patch_id for f in row.pending_reboot)),
                _cell("; ".join(f.patch_id for f in row.rejected)),
                _cell(row.revision),
                _cell(revision_text(data)),
                generated,
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (agents choose some of this text)."""
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def _finding_text(finding: Finding, *, reason: bool = False) -> str:
    severity = "" if finding.severity is Severity.UNSPECIFIED else f" ({finding.severity.value})"
    why = f": {finding.reason}" if reason and finding.reason else ""
    return f"{finding.patch_id}{severity}{why}"


# --- Markdown -------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "*": "\\*",
        "_": "\\_",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
        "<": "&lt;",
        ">": "&gt;",
        "\n": " ",
        "\r": " ",
    }
)


def md(text: object) -> str:
    """Text safe inside a Markdown table cell or a list item."""
    return str(text).translate(_MARKDOWN_SPECIAL)


def _table(header: Iterable[str], rows: Iterable[Iterable[object]], align: str = "") -> list[str]:
    """A Markdown table; `align` has one letter per column, `r` for right-aligned numbers."""
    names = list(header)
    marks = ["--:" if align[i : i + 1] == "r" else "---" for i in range(len(names))]
    lines = ["| " + " | ".join(names) + " |", "| " + " | ".join(marks) + " |"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return lines


def render_summary(data: ReportData) -> str:
    """The title, the stamp and the summary tables: what a notification carries."""
    return "\n".join(_summary_lines(data)) + "\n"


def _summary_lines(data: ReportData) -> list[str]:
    counts = data.counts
    pending = data.pending_approvals
    totals = data.installs_total
    lines = [
        f"# Patch compliance: {md(data.scope)}",
        "",
        f"Policy revision `{revision_text(data)}`, generated {human_time(data.generated_at)}.",
        "",
        "## Summary",
        "",
    ]
    pending_text = (
        "not known (no plan yet)"
        if pending is None
        else f"{sum(len(p.patches) for p in pending)} patch(es) on {len(pending)} device(s)"
    )
    lines += _table(
        ("Figure", "Value"),
        [
            (
                "Devices",
                f"{data.device_count} ({data.compliant_devices} compliant with every baseline)",
            ),
            (
                "Verdicts (device and baseline)",
                (
                    f"{counts.total}: {counts.compliant} compliant, {counts.non_compliant} "
                    f"non-compliant, {counts.unknown} unknown ({counts.compliant_percent:.1f}% "
                    "compliant)"
                ),
            ),
            ("Pending approvals", pending_text),
            ("Pending reboots", f"{len(data.pending_reboots)} device(s)"),
            (
                "Installs, last 30 days",
                f"{totals.installed} installed, {totals.failed} failed",
            ),
        ],
    )
    lines += ["", "## Compliance by baseline", ""]
    if data.baselines:
        lines += _table(
            ("Baseline", "Compliant", "Non-compliant", "Unknown", "Compliant %", "By severity"),
            [
                (
                    md(b.name),
                    b.counts.compliant,
                    b.counts.non_compliant,
                    b.counts.unknown,
                    f"{b.counts.compliant_percent:.1f}",
                    _severities(b.non_compliant_by_severity),
                )
                for b in data.baselines
            ],
            align="lrrrrl",
        )
        lines += [
            "",
            (
                "_By severity_: non-compliant devices counted by their most severe missing or "
                "failed patch."
            ),
        ]
    else:
        lines.append("No compliance verdicts yet: no baseline targets a scanned device.")
    return lines


def _severities(pairs: tuple[tuple[Severity, int], ...]) -> str:
    return ", ".join(f"{severity.value} {n}" for severity, n in pairs) or "-"


def render_markdown(data: ReportData, *, max_rows: int = MARKDOWN_MAX_ROWS) -> str:
    """The report for people reading the repository: summary tables first, details after."""
    lines = _summary_lines(data)
    lines += _trend_lines(data)
    lines += _install_lines(data)
    lines += _finding_lines(data, max_rows=max_rows)
    lines += _pending_lines(data, max_rows=max_rows)
    lines += ["", "## Every device", ""]
    if data.devices:
        shown = data.devices[:max_rows]
        lines += _table(
            ("Tenant", "Device", "Baseline", "State", "Last scan"),
            [
                (
                    md(r.tenant),
                    md(r.device),
                    md(baseline_name(r.baseline)),
                    r.state.value,
                    stamp(r.scanned_at) or "never",
                )
                for r in shown
            ],
        )
        lines += _more(len(data.devices) - len(shown))
    else:
        lines.append("No devices with a compliance verdict.")
    return "\n".join(lines) + "\n"


def _trend_lines(data: ReportData) -> list[str]:
    if not data.trend:
        return []
    points = data.trend[-TREND_ROWS:]
    lines = ["", "## Compliance trend", ""]
    lines += _table(
        ("Day", "Compliant %"),
        [(p.day.isoformat(), f"{p.compliant_percent:.1f}") for p in points],
        align="lr",
    )
    return lines


def _install_lines(data: ReportData) -> list[str]:
    active = [d for d in data.installs if d.installed or d.failed]
    if not data.installs:
        return []
    lines = ["", "## Installs of the last 30 days", ""]
    if not active:
        return [*lines, "No installs finished in the last 30 days."]
    lines += _table(
        ("Day", "Installed", "Failed"),
        [(d.day.isoformat(), d.installed, d.failed) for d in active],
        align="lrr",
    )
    return [*lines, "", "Days without a finished install are left out."]


def _finding_lines(data: ReportData, *, max_rows: int) -> list[str]:
    lines = ["", "## Non-compliant devices", ""]
    failing = [r for r in data.devices if r.state is ComplianceState.NON_COMPLIANT]
    if not failing:
        lines.append("None.")
    else:
        shown = failing[:max_rows]
        lines += _table(
            ("Device", "Baseline", "Missing", "Failed (reason)", "Reboot pending"),
            [
                (
                    md(f"{r.tenant}/{r.device}"),
                    md(baseline_name(r.baseline)),
                    md(", ".join(_finding_text(f) for f in r.missing)) or "-",
                    md("; ".join(_finding_text(f, reason=True) for f in r.failed)) or "-",
                    md(", ".join(f.patch_id for f in r.pending_reboot))
                    or ("yes" if r.reboot_pending else "no"),
                )
                for r in shown
            ],
        )
        lines += _more(len(failing) - len(shown))
    unknown = [r for r in data.devices if r.state is ComplianceState.UNKNOWN]
    lines += ["", "## Unknown compliance (no fresh scan)", ""]
    if not unknown:
        return [*lines, "None."]
    shown = unknown[:max_rows]
    lines += _table(
        ("Device", "Baseline", "Last scan"),
        [
            (
                md(f"{r.tenant}/{r.device}"),
                md(baseline_name(r.baseline)),
                stamp(r.scanned_at) or "never",
            )
            for r in shown
        ],
    )
    return lines + _more(len(unknown) - len(shown))


def _pending_lines(data: ReportData, *, max_rows: int) -> list[str]:
    lines = ["", "## Pending approvals", ""]
    if data.pending_approvals is None:
        lines.append("Not known: no plan was available when the report was written.")
    elif not data.pending_approvals:
        lines.append("None.")
    else:
        shown = data.pending_approvals[:max_rows]
        lines += _table(
            ("Device", "Patches waiting for approval"),
            [(md(f"{p.tenant}/{p.device}"), md(", ".join(p.patches))) for p in shown],
        )
        lines += _more(len(data.pending_approvals) - len(shown))
    lines += ["", "## Pending reboots", ""]
    if not data.pending_reboots:
        return [*lines, "None."]
    shown_reboots = data.pending_reboots[:max_rows]
    lines += _table(
        ("Device", "Reported", "Patches waiting for the reboot"),
        [
            (
                md(f"{r.tenant}/{r.device}"),
                stamp(r.since) or "-",
                md(", ".join(r.patches)) or "-",
            )
            for r in shown_reboots
        ],
    )
    return lines + _more(len(data.pending_reboots) - len(shown_reboots))


def _more(hidden: int) -> list[str]:
    if hidden <= 0:
        return []
    return ["", f"… and {hidden} more: the CSV and JSON reports list every row."]


__all__ = [
    "CSV_COLUMNS",
    "md",
    "render_csv",
    "render_json",
    "render_markdown",
    "render_summary",
    "stamp",
    "to_document",
]
