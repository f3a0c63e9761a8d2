"""Render a report as one self-contained HTML page: inline CSS, inline SVG charts, no script.

Purely computational. The page loads nothing: no JavaScript, fonts, images or style sheets from
anywhere, and its Content-Security-Policy says so, so it can be opened from a mail attachment, a
repository browser or a file share alike. Every text is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from html import escape

from controller.core.compliance import ComplianceState
from controller.reports.model import (
    STATE_ORDER,
    InstallDay,
    ReportData,
    StateCounts,
    TrendPoint,
    baseline_name,
)
from controller.reports.render import (
    STATE_LABELS,
    human_time,
    revision_text,
    stamp,
)

HTML_MAX_ROWS = 5000
COLOURS = {
    ComplianceState.COMPLIANT: "#2e7d32",
    ComplianceState.NON_COMPLIANT: "#c62828",
    ComplianceState.UNKNOWN: "#9e9e9e",
}
INSTALLED_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2125;
margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}
.stamp{color:#5c6670;margin:0 0 20px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 16px;min-width:150px}
.card b{display:block;font-size:22px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px}
.chart h3{font-size:14px;margin:0 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600}.compliant{color:#2e7d32}.non-compliant{color:#c62828}
.unknown{color:#6b7379}.legend span{margin-right:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.muted{color:#5c6670}
svg text{font:11px system-ui,sans-serif;fill:#3b444c}
"""


def render_html(data: ReportData, *, max_rows: int = HTML_MAX_ROWS) -> str:
    """The report as a single HTML page with its charts drawn in SVG."""
    title = f"Patch compliance: {data.scope}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="patchctl-revision" content="{_e(revision_text(data))}">',
        f'<meta name="patchctl-generated" content="{stamp(data.generated_at)}">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body><main>",
        f"<h1>{_e(title)}</h1>",
        (
            f'<p class="stamp">Policy revision <code>{_e(revision_text(data))}</code>, generated '
            f'<time datetime="{stamp(data.generated_at)}">{_e(human_time(data.generated_at))}'
            "</time></p>"
        ),
        _cards(data),
        '<section class="charts">',
        _chart("Verdicts", donut(data.counts)),
        _chart("Compliance by baseline", baseline_bars(data)),
        _chart("Compliance trend (% compliant)", trend_chart(data.trend)),
        _chart("Installs of the last 30 days", install_chart(data.installs)),
        "</section>",
        *_baseline_table(data),
        *_non_compliant_table(data, max_rows=max_rows),
        *_pending_tables(data, max_rows=max_rows),
        *_device_table(data, max_rows=max_rows),
        '<p class="muted">Written by patchctl. The CSV and JSON reports hold every row.</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _cards(data: ReportData) -> str:
    counts = data.counts
    pending = data.pending_approvals
    totals = data.installs_total
    cards = [
        ("Devices", str(data.device_count), f"{data.compliant_devices} fully compliant"),
        ("Compliant", f"{counts.compliant_percent:.1f}%", f"of {counts.total} verdicts"),
        ("Non-compliant", str(counts.non_compliant), "verdicts"),
        ("Unknown", str(counts.unknown), "no fresh scan"),
        (
            "Pending approvals",
            "?" if pending is None else str(sum(len(p.patches) for p in pending)),
            "not known" if pending is None else f"on {len(pending)} device(s)",
        ),
        ("Pending reboots", str(len(data.pending_reboots)), "device(s)"),
        ("Installed (30 days)", str(totals.installed), f"{totals.failed} failed"),
    ]
    body = "".join(
        f'<div class="card">{_e(label)}<b>{_e(value)}</b>'
        f'<span class="muted">{_e(note)}</span></div>'
        for label, value, note in cards
    )
    return f'<section class="cards">{body}</section>'


def _chart(title: str, svg: str) -> str:
    return f'<figure class="chart"><h3>{_e(title)}</h3>{svg}</figure>'


def _legend() -> str:
    items = "".join(
        f'<span><i class="swatch" style="background:{COLOURS[s]}"></i>{STATE_LABELS[s]}</span>'
        for s in STATE_ORDER
    )
    return f'<div class="legend">{items}</div>'


# --- charts ---------------------------------------------------------------------------------


def donut(counts: StateCounts) -> str:
    """A donut of the verdicts by state, the compliant share in its middle."""
    # r = 100 / 2π, so the circumference is 100 and each dash length is a percentage.
    radius = 15.91549
    segments = []
    offset = 0.0
    for state in STATE_ORDER:
        n = counts.of(state)
        if not n or not counts.total:
            continue
        share = 100.0 * n / counts.total
        segments.append(
            f'<circle cx="21" cy="21" r="{radius}" fill="none" stroke="{COLOURS[state]}" '
            f'stroke-width="6" stroke-dasharray="{share:.3f} {100 - share:.3f}" '
            f'stroke-dashoffset="{25 - offset:.3f}"><title>{STATE_LABELS[state]}: {n}</title>'
            "</circle>"
        )
        offset += share
    if not segments:
        segments.append(
            f'<circle cx="21" cy="21" r="{radius}" fill="none" stroke="#e0e0e0" stroke-width="6"/>'
        )
    centre = f"{counts.compliant_percent:.0f}%" if counts.total else "-"
    return (
        '<svg viewBox="0 0 42 42" width="180" height="180" role="img" '
        f'aria-label="Verdicts: {counts.compliant} compliant, {counts.non_compliant} '
        f'non-compliant, {counts.unknown} unknown">'
        + "".join(segments)
        + f'<text x="21" y="23" text-anchor="middle" style="font-size:7px;font-weight:600">'
        f"{centre}</text></svg>" + _legend()
    )


def baseline_bars(data: ReportData) -> str:
    """One horizontal bar per baseline, split by verdict state."""
    if not data.baselines:
        return '<p class="muted">No verdicts yet.</p>'
    width, label_width, bar_height, gap = 420, 150, 16, 8
    height = len(data.baselines) * (bar_height + gap) + gap
    rows = []
    for index, summary in enumerate(data.baselines):
        y = gap + index * (bar_height + gap)
        total = summary.counts.total or 1
        x = float(label_width)
        name = summary.name if len(summary.name) <= 24 else summary.name[:23] + "…"
        rows.append(
            f'<text x="{label_width - 6}" y="{y + 12}" text-anchor="end">{_e(name)}'
            f"<title>{_e(summary.name)}</title></text>"
        )
        for state in STATE_ORDER:
            n = summary.counts.of(state)
            if not n:
                continue
            w = (width - label_width) * n / total
            rows.append(
                f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_height}" '
                f'fill="{COLOURS[state]}"><title>{_e(summary.name)}: {n} {STATE_LABELS[state]}'
                "</title></rect>"
            )
            x += w
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-label="Verdicts per baseline">' + "".join(rows) + "</svg>" + _legend()
    )


def trend_chart(points: Sequence[TrendPoint]) -> str:
    """The daily compliant share as a line over time (0 to 100%)."""
    if not points:
        return '<p class="muted">No history yet: the trend starts with this report.</p>'
    width, height, left, right, top, bottom = 420, 180, 34, 10, 10, 24
    first, last = points[0].day, points[-1].day
    span = max((last - first).days, 1)

    def x_of(day: date) -> float:
        if first == last:
            return left + (width - left - right) / 2
        return left + (width - left - right) * (day - first).days / span

    def y_of(value: float) -> float:
        return top + (height - top - bottom) * (100 - value) / 100

    grid = []
    for value in (0, 25, 50, 75, 100):
        y = y_of(value)
        grid.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    coordinates = " ".join(f"{x_of(p.day):.1f},{y_of(p.compliant_percent):.1f}" for p in points)
    dots = "".join(
        f'<circle cx="{x_of(p.day):.1f}" cy="{y_of(p.compliant_percent):.1f}" r="2.5" '
        f'fill="{COLOURS[ComplianceState.COMPLIANT]}"><title>{p.day.isoformat()}: '
        f"{p.compliant_percent:.1f}%</title></circle>"
        for p in points
    )
    labels = (
        f'<text x="{left}" y="{height - 6}">{first.isoformat()}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{last.isoformat()}</text>'
    )
    line = (
        f'<polyline fill="none" stroke="{COLOURS[ComplianceState.COMPLIANT]}" stroke-width="2" '
        f'points="{coordinates}"/>'
        if len(points) > 1
        else ""
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="Compliance trend from {first.isoformat()} to {last.isoformat()}">'
        + "".join(grid)
        + line
        + dots
        + labels
        + "</svg>"
    )


def install_chart(days: Sequence[InstallDay]) -> str:
    """Installed and failed patches per day, as stacked bars."""
    if not days:
        return '<p class="muted">Not broken down for this report.</p>'
    width, height, left, bottom, top = 420, 160, 34, 24, 10
    peak = max((d.installed + d.failed for d in days), default=0) or 1
    slot = (width - left) / len(days)
    plot = height - top - bottom
    bars = []
    for index, day in enumerate(days):
        x = left + index * slot + 1
        y = float(height - bottom)
        for n, colour, label in (
            (day.installed, INSTALLED_COLOUR, "installed"),
            (day.failed, FAILED_COLOUR, "failed"),
        ):
            if not n:
                continue
            h = plot * n / peak
            y -= h
            bars.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{day.day.isoformat()}: {n} {label}</title></rect>'
            )
    axis = (
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#9aa3ab"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>'
        f'<text x="{left}" y="{height - 6}">{days[0].day.isoformat()}</text>'
        f'<text x="{width}" y="{height - 6}" text-anchor="end">{days[-1].day.isoformat()}</text>'
    )
    legend = (
        f'<div class="legend"><span><i class="swatch" style="background:{INSTALLED_COLOUR}"></i>'
        f'installed</span><span><i class="swatch" style="background:{FAILED_COLOUR}"></i>'
        "failed</span></div>"
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-label="Installs per day">' + axis + "".join(bars) + "</svg>" + legend
    )


# --- tables ---------------------------------------------------------------------------------


def _table(
    caption: str, header: Sequence[str], rows: Iterable[Sequence[str]], numeric: str = ""
) -> list[str]:
    """An HTML table; cells are already escaped; `numeric` marks right-aligned columns (`n`)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{cell}</td>' if numeric[i : i + 1] == "n" else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return [
        f"<h2>{_e(caption)}</h2>",
        f"<table><thead><tr>{head}</tr></thead><tbody>",
        *body,
        "</tbody></table>",
    ]


def _state(state: ComplianceState) -> str:
    return f'<span class="state {state.value}">{state.value}</span>'


def _more(hidden: int) -> list[str]:
    if hidden <= 0:
        return []
    return [f'<p class="muted">… and {hidden} more: the CSV and JSON reports list every row.</p>']


def _baseline_table(data: ReportData) -> list[str]:
    return _table(
        "Compliance by baseline",
        ("Baseline", "Compliant", "Non-compliant", "Unknown", "Compliant %", "By severity"),
        [
            (
                _e(b.name),
                str(b.counts.compliant),
                str(b.counts.non_compliant),
                str(b.counts.unknown),
                f"{b.counts.compliant_percent:.1f}",
                _e(", ".join(f"{s.value} {n}" for s, n in b.non_compliant_by_severity) or "-"),
            )
            for b in data.baselines
        ],
        numeric="lnnnnl",
    )


def _non_compliant_table(data: ReportData, *, max_rows: int) -> list[str]:
    failing = [r for r in data.devices if r.state is ComplianceState.NON_COMPLIANT]
    shown = failing[:max_rows]
    rows = []
    for r in shown:
        missing = ", ".join(f"{f.patch_id} ({f.severity.value})" for f in r.missing)
        failed = "; ".join(f"{f.patch_id}: {f.reason or 'no reason given'}" for f in r.failed)
        reboot = ", ".join(f.patch_id for f in r.pending_reboot)
        rows.append(
            (
                _e(f"{r.tenant}/{r.device}"),
                _e(baseline_name(r.baseline)),
                _e(missing or "-"),
                _e(failed or "-"),
                _e(reboot or ("yes" if r.reboot_pending else "no")),
            )
        )
    return [
        *_table(
            "Non-compliant devices",
            ("Device", "Baseline", "Missing (severity)", "Failed (reason)", "Reboot pending"),
            rows,
        ),
        *_more(len(failing) - len(shown)),
    ]


def _pending_tables(data: ReportData, *, max_rows: int) -> list[str]:
    parts: list[str] = []
    if data.pending_approvals is None:
        parts += [
            "<h2>Pending approvals</h2>",
            '<p class="muted">Not known: no plan was available when the report was written.</p>',
        ]
    else:
        shown = data.pending_approvals[:max_rows]
        parts += _table(
            "Pending approvals",
            ("Device", "Patches waiting for approval"),
            [(_e(f"{p.tenant}/{p.device}"), _e(", ".join(p.patches))) for p in shown],
        )
        parts += _more(len(data.pending_approvals) - len(shown))
    reboots = data.pending_reboots[:max_rows]
    parts += _table(
        "Pending reboots",
        ("Device", "Reported", "Patches waiting for the reboot"),
        [
            (_e(f"{r.tenant}/{r.device}"), _e(stamp(r.since) or "-"), _e(", ".join(r.patches)))
            for r in reboots
        ],
    )
    return parts + _more(len(data.pending_reboots) - len(reboots))


def _device_table(data: ReportData, *, max_rows: int) -> list[str]:
    shown = data.devices[:max_rows]
    return [
        *_table(
            "Every device",
            ("Tenant", "Device", "OS", "Baseline", "State", "Last scan", "Installed"),
            [
                (
                    _e(r.tenant),
                    _e(r.device),
                    _e(r.os),
                    _e(baseline_name(r.baseline)),
                    _state(r.state),
                    _e(stamp(r.scanned_at) or "never"),
                    str(r.installed),
                )
                for r in shown
            ],
            numeric="lllllln",
        ),
        *_more(len(data.devices) - len(shown)),
    ]


__all__ = ["render_html"]
