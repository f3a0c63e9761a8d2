"""Render the dashboard and its sign-in form as HTML: inline CSS, inline SVG, no script.

Purely computational. The charts are the report's (`controller.reports.html`), so the page and
the HTML report draw the same figures the same way. Every text is HTML-escaped; the numbers a
test or a scraper wants carry `data-figure` attributes, the per-baseline rows `data-baseline`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from controller.core.conditions import ConditionStatus, ConditionType
from controller.core.revisions import Revision
from controller.kinds.notifications import AlertSeverity
from controller.reports import html as report_html
from controller.reports.model import STATE_ORDER, ReportData
from controller.reports.render import STATE_LABELS, human_time, stamp
from controller.server.dashboard.view import Dashboard

REFRESH_SECONDS = 30
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

STYLE = (
    report_html.STYLE
    + """
body{background:#f3f5f8}
.top{background:#1f2933;color:#f5f7fa;padding:10px 24px;display:flex;align-items:center;gap:16px}
.top .brand{font-weight:700;font-size:16px;letter-spacing:.3px}
.top .scope{color:#cbd2d9}.top .spacer{flex:1}
.top form{margin:0}.top button{background:transparent;color:#f5f7fa;border:1px solid #52606d;
border-radius:6px;padding:4px 10px;font:inherit;cursor:pointer}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.badge.ok{background:#e3f4e4;color:#1e5b22}.badge.bad{background:#fde7e7;color:#8e1c1c}
.badge.warn{background:#fff3d6;color:#7a5300}.badge.info{background:#e6eef9;color:#1e4c8f}
.top .badge.ok{background:#2e7d32;color:#fff}.top .badge.bad{background:#c62828;color:#fff}
main{max-width:1240px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr))}
.card b{font-size:26px}.card.alarm b{color:#c62828}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px;margin-top:16px}
.panel{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 18px}
.panel h2{margin:0 0 10px;font-size:16px}.panel table{margin-top:10px}
.figures{display:flex;gap:24px;margin:4px 0 10px}.figures div{min-width:90px}
.figures b{display:block;font-size:24px}.installed b{color:#2e7d32}.failed b{color:#c62828}
.pending b{color:#b26a00}
.sev-critical{color:#c62828;font-weight:600}.sev-warning{color:#b26a00;font-weight:600}
.sev-info{color:#1e4c8f}
.tenants a{margin-right:10px}
nav.tenants{margin:0 0 14px}
.wide{margin-top:16px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{color:#5c6670;margin:24px 0 8px;font-size:12px}
.login{max-width:420px;margin:10vh auto;background:#fff;border:1px solid #dde1e6;border-radius:10px;
padding:28px 32px}
.login h1{margin-bottom:12px}.login label{display:block;font-weight:600;margin:14px 0 6px}
.login input{width:100%;box-sizing:border-box;padding:8px 10px;border:1px solid #b8c0c8;
border-radius:6px;font:inherit}
.login button{margin-top:16px;background:#1f2933;color:#fff;border:0;border-radius:6px;
padding:8px 18px;font:inherit;cursor:pointer}
.error{background:#fde7e7;color:#8e1c1c;border-radius:6px;padding:8px 12px;margin:12px 0 0}
"""
)


def escape_text(text: object) -> str:
    """Any value as HTML text or attribute value (quotes escaped too)."""
    return escape(str(text), quote=True)


_e = escape_text


def head(title: str, *, refresh: bool, extra_style: str = "") -> list[str]:
    """The document's start up to `</head>`: CSP, no referrer, the inline style."""
    return _head(title, refresh=refresh, extra_style=extra_style)


def _head(title: str, *, refresh: bool, extra_style: str = "") -> list[str]:
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        *([f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'] if refresh else []),
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}{extra_style}</style>",
        "</head>",
    ]


# --- sign-in --------------------------------------------------------------------------------


def render_login(*, message: str | None = None) -> str:
    """The sign-in form; `message` says why the last attempt failed (never echoes the token)."""
    error = f'<p class="error" role="alert" id="login-error">{_e(message)}</p>' if message else ""
    return "\n".join(
        [
            *_head("patchctl — sign in", refresh=False),
            "<body>",
            '<main><form class="login" method="post" action="/login" id="login">',
            "<h1>patchctl dashboard</h1>",
            (
                '<p class="muted">Read-only. Sign in with a read token; a partner\'s token also '
                "shows its clients.</p>"
            ),
            error,
            '<label for="token">Read token</label>',
            (
                '<input id="token" name="token" type="password" autocomplete="off" required '
                'spellcheck="false" placeholder="pcr_…">'
            ),
            '<button type="submit">Sign in</button>',
            (
                '<p class="muted">Create one with <code>patchctl token create --tenant TENANT '
                "--kind read</code>.</p>"
            ),
            "</form></main>",
            "</body></html>",
        ]
    )


def render_refused(message: str) -> str:
    """A request the page cannot answer (a tenant outside the scope), with a way back."""
    return "\n".join(
        [
            *_head("patchctl — not shown", refresh=False),
            '<body><main><div class="login">',
            "<h1>patchctl dashboard</h1>",
            f'<p class="error" role="alert">{_e(message)}</p>',
            '<p><a href="/">Back to the dashboard</a></p>',
            "</div></main></body></html>",
        ]
    )


# --- the dashboard --------------------------------------------------------------------------


def render_dashboard(board: Dashboard) -> str:
    """The whole page for one scope."""
    title = f"patchctl — {board.scope}"
    return "\n".join(
        [
            *_head(title, refresh=True),
            "<body>",
            _top_bar(board),
            "<main>",
            _stamp(board),
            _tenant_links(board),
            _cards(board),
            '<div class="grid">',
            _compliance_panel(board),
            _approvals_panel(board),
            _patch_status_panel(board),
            _trend_panel(board),
            "</div>",
            _alerts_panel(board),
            _revision_panel(board),
            (
                f'<footer>Generated <time datetime="{stamp(board.now)}">'
                f"{_e(human_time(board.now))}</time>; this page refreshes every "
                f"{REFRESH_SECONDS} s. The same data as JSON: <code>/api/v1/status</code>, "
                "<code>/api/v1/compliance</code>, <code>/api/v1/alerts</code>.</footer>"
            ),
            "</main></body></html>",
        ]
    )


def short_revision(revision: str | None) -> str:
    """`main@sha1:0123456789ab` for a full revision; the text as it is otherwise."""
    if not revision:
        return "none yet"
    parsed = Revision.parse(revision)
    return parsed.short(marker=True) if parsed else revision


def _revision(revision: str | None, figure: str) -> str:
    return (
        f'<code data-figure="{figure}" title="{_e(revision or "")}">'
        f"{_e(short_revision(revision))}</code>"
    )


def _ready_badge(board: Dashboard) -> str:
    ready = board.condition(ConditionType.READY)
    if ready is None:
        return '<span class="badge warn" data-figure="ready">not reconciled yet</span>'
    is_ready = ready.status == ConditionStatus.TRUE
    css = "ok" if is_ready else "bad"
    text = "Ready" if is_ready else f"Not ready: {ready.reason}"
    return (
        f'<span class="badge {css}" data-figure="ready" title="{_e(ready.message)}">'
        f"{_e(text)}</span>"
    )


def _top_bar(board: Dashboard) -> str:
    return top_bar(board.scope, current="overview", badge=_ready_badge(board))


NAV = (
    ("overview", "/", "Overview"),
    ("alerts", "/alerts", "Alerts"),
    ("devices", "/devices", "Devices"),
)


_CURRENT = ' class="current"'


def top_bar(scope: str, *, current: str, badge: str = "") -> str:
    """The bar on every page: the pages, the scope, `badge` (HTML) and the sign-out button."""
    links = "".join(
        f'<a href="{href}"{_CURRENT if key == current else ""}>{_e(label)}</a>'
        for key, href, label in NAV
    )
    return (
        '<header class="top"><span class="brand">patchctl</span>'
        f'<nav class="pages">{links}</nav>'
        f'<span class="scope">Dashboard · <span data-figure="scope">{_e(scope)}</span>'
        "</span>"
        f'<span class="spacer"></span>{badge}'
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
        "</header>"
    )


def _stamp(board: Dashboard) -> str:
    updated = (
        f', reconciled <time datetime="{stamp(board.status_updated_at)}">'
        f"{_e(human_time(board.status_updated_at))}</time>"
        if isinstance(board.status_updated_at, datetime)
        else ""
    )
    return (
        '<p class="stamp">Applied policy revision '
        f"{_revision(board.applied_revision, 'applied-revision')}"
        f"{updated}</p>"
    )


def _tenant_links(board: Dashboard) -> str:
    """A partner sees its clients: one link per tenant narrows the page to it."""
    others = [t for t in board.tenants if t != board.scope]
    if not others:
        return ""
    links = "".join(f'<a href="/?tenant={_e(t)}">{_e(t)}</a>' for t in others)
    return f'<nav class="tenants muted">Tenants in this scope: {links}</nav>'


def _card(label: str, value: str, note: str, figure: str, *, alarm: bool = False) -> str:
    css = "card alarm" if alarm else "card"
    return (
        f'<div class="{css}">{_e(label)}<b data-figure="{figure}">{_e(value)}</b>'
        f'<span class="muted">{_e(note)}</span></div>'
    )


def _cards(board: Dashboard) -> str:
    counts = board.verdicts
    status = board.patch_status
    open_alerts = sum(
        1 for a in board.alerts if not a.resolved and a.severity == AlertSeverity.CRITICAL
    )
    cards = [
        _card(
            "Compliant",
            f"{counts.compliant_percent:.1f}%" if counts.total else "-",
            f"{counts.compliant} of {counts.total} verdicts",
            "compliant-percent",
        ),
        _card(
            "Devices",
            str(board.agents.get("devices", 0)),
            f"{board.agents.get('online', 0)} online",
            "devices",
        ),
        _card(
            "Pending approvals",
            "?" if board.pending_total is None else str(board.pending_total),
            "waiting for a PR" if board.pending_total is not None else "not known",
            "pending-approvals-card",
        ),
        _card("Installed", str(status.get("installed", 0)), "last 30 days", "installed-card"),
        _card(
            "Failed",
            str(status.get("failed", 0)),
            "last 30 days",
            "failed-card",
            alarm=status.get("failed", 0) > 0,
        ),
        _card(
            "Critical alerts",
            str(open_alerts),
            "open, among the recent ones",
            "critical-alerts",
            alarm=open_alerts > 0,
        ),
    ]
    return f'<section class="cards">{"".join(cards)}</section>'


def _panel(panel_id: str, title: str, body: Iterable[str]) -> str:
    return (
        f'<section class="panel" id="{panel_id}" data-widget="{panel_id}">'
        f"<h2>{_e(title)}</h2>{''.join(body)}</section>"
    )


def _table(header: Sequence[str], rows: Iterable[str], *, numeric: str = "") -> str:
    head = "".join(
        f'<th class="n">{_e(h)}</th>' if numeric[i : i + 1] == "n" else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _compliance_panel(board: Dashboard) -> str:
    baselines = board.baselines
    if not baselines:
        return _panel(
            "compliance",
            "Patch compliance per baseline",
            ['<p class="muted">No verdicts yet: devices must scan and a reconcile must run.</p>'],
        )
    rows = []
    for summary in baselines:
        cells = "".join(
            f'<td class="n" data-state="{state.value}">{summary.counts.of(state)}</td>'
            for state in STATE_ORDER
        )
        rows.append(
            f'<tr data-baseline="{_e(summary.name)}"><td>{_e(summary.name)}</td>{cells}'
            f'<td class="n" data-state="percent">{summary.counts.compliant_percent:.1f}</td></tr>'
        )
    header = ("Baseline", *(STATE_LABELS[s].capitalize() for s in STATE_ORDER), "Compliant %")
    return _panel(
        "compliance",
        "Patch compliance per baseline",
        [_baseline_bars(board), _table(header, rows, numeric="lnnnn")],
    )


def _baseline_bars(board: Dashboard) -> str:
    """The report's bars; they read only the per-baseline summaries of the report value."""
    data = ReportData(
        tenant=board.scope, revision=None, generated_at=board.now, baselines=board.baselines
    )
    return report_html.baseline_bars(data)


def _approvals_panel(board: Dashboard) -> str:
    total = board.pending_total
    figure = (
        f'<div class="figures"><div class="pending"><b data-figure="pending-approvals">'
        f"{'?' if total is None else total}</b>patches pending approval</div>"
    )
    devices = board.pending_devices
    if devices is not None:
        figure += f'<div><b data-figure="pending-approval-devices">{len(devices)}</b>devices</div>'
    figure += "</div>"
    if total is None:
        note = (
            '<p class="muted">Not known for this scope: the last plan recorded the fleet\'s '
            "total only, which would include other tenants' devices.</p>"
        )
        return _panel("approvals", "Pending approvals", [figure, note])
    if devices is None:
        note = '<p class="muted">The last plan did not record them per device.</p>'
        return _panel("approvals", "Pending approvals", [figure, note])
    if not devices:
        return _panel(
            "approvals",
            "Pending approvals",
            [figure, '<p class="muted">Nothing waits for an approval.</p>'],
        )
    ranked = sorted(devices, key=lambda p: (-len(p.patches), p.tenant, p.device))
    rows = [
        f'<tr data-device="{_e(p.device)}"><td>{_e(p.tenant)}/{_e(p.device)}</td>'
        f'<td class="n">{len(p.patches)}</td><td>{_e(_listed(p.patches))}</td></tr>'
        for p in ranked[:PENDING_ROWS_SHOWN]
    ]
    more = len(ranked) - PENDING_ROWS_SHOWN
    tail = [f'<p class="muted">… and {more} more devices.</p>'] if more > 0 else []
    return _panel(
        "approvals",
        "Pending approvals",
        [
            figure,
            _table(("Device", "Patches", "Waiting for approval"), rows, numeric="lnl"),
            *tail,
            '<p class="muted">Approve with a pull request that adds an Approval.</p>',
        ],
    )


PENDING_ROWS_SHOWN = 8
LISTED_PATCHES = 4


def _listed(patches: Sequence[str]) -> str:
    shown = ", ".join(patches[:LISTED_PATCHES])
    return f"{shown}, +{len(patches) - LISTED_PATCHES}" if len(patches) > LISTED_PATCHES else shown


def _patch_status_panel(board: Dashboard) -> str:
    status = board.patch_status
    figures = "".join(
        f'<div class="{key}"><b data-figure="{key}">{status.get(key, 0)}</b>{label}</div>'
        for key, label in (
            ("installed", "installed"),
            ("pending", "pending (in flight)"),
            ("failed", "failed"),
        )
    )
    return _panel(
        "patch-status",
        "Patch status, last 30 days",
        [f'<div class="figures">{figures}</div>', report_html.install_chart(board.installs)],
    )


def _trend_panel(board: Dashboard) -> str:
    counts = board.verdicts
    body = [
        report_html.trend_chart(board.trend),
        (
            '<p class="muted">'
            + ", ".join(f"{counts.of(s)} {STATE_LABELS[s]}" for s in STATE_ORDER)
            + f" of {counts.total} verdicts; "
            f"{_count(board.reboots, 'device')} waiting for a reboot.</p>"
        ),
    ]
    return _panel("trend", "Compliance trend (% compliant)", body)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_SEVERITY_CLASS: dict[str, str] = {s: f"sev-{s.value}" for s in AlertSeverity}


def _alerts_panel(board: Dashboard) -> str:
    if not board.alerts:
        body = ['<p class="muted">No alerts.</p>']
    else:
        rows = [
            f'<tr data-alert="{_e(a.kind)}"><td><a href="/alerts/{a.id}">'
            f'<time datetime="{stamp(a.created_at)}">{_e(human_time(a.created_at))}</time>'
            "</a></td>"
            f'<td class="{_SEVERITY_CLASS.get(a.severity, "")}">{_e(a.severity)}</td>'
            f"<td>{_e(a.kind)}</td><td>{_e(_where(a.tenant, a.device))}</td>"
            f"<td>{_e(a.message)}</td><td>{_e(a.state)}</td></tr>"
            for a in board.alerts
        ]
        body = [
            _table(("When", "Severity", "Alert", "Where", "Message", "State"), rows),
            '<p><a href="/alerts">Browse and filter every alert</a></p>',
        ]
    return '<div class="wide">' + _panel("alerts", "Recent alerts", body) + "</div>"


def _where(tenant: str | None, device: str | None) -> str:
    if device:
        return f"{tenant}/{device}" if tenant else device
    return tenant or "all tenants"


def _revision_panel(board: Dashboard) -> str:
    lines = [
        "<p>Applied: "
        + _revision(board.applied_revision, "applied-revision-detail")
        + " · last attempted: "
        + _revision(board.attempted_revision, "attempted-revision")
        + "</p>"
    ]
    if board.source_error_count:
        lines.append(
            f'<p class="sev-critical">The last attempted revision failed with '
            f"{board.source_error_count} error(s); <code>patchctl validate</code> on the policy "
            "repository lists them.</p>"
        )
    if board.conditions:
        rows = [
            f'<tr data-condition="{_e(c.type)}"><td>{_e(c.type)}</td>'
            f'<td><span class="badge {_condition_class(c.type, c.status)}">'
            f"{_e(c.status)}</span></td>"
            f"<td>{_e(c.reason)}</td><td>{_e(c.message)}</td></tr>"
            for c in board.conditions
        ]
        lines.append(_table(("Condition", "Status", "Reason", "Message"), rows))
    else:
        lines.append('<p class="muted">No reconcile has run yet.</p>')
    return '<div class="wide">' + _panel("revision", "Policy revision", lines) + "</div>"


# The status of a condition that is good news: Ready when True, Stalled when False.
_GOOD_NEWS: dict[str, ConditionStatus] = {
    ConditionType.READY: ConditionStatus.TRUE,
    ConditionType.STALLED: ConditionStatus.FALSE,
}


def _condition_class(kind: str, status: str) -> str:
    # Ready is good news when True, Stalled when False; Reconciling and unknowns are neutral.
    wanted = _GOOD_NEWS.get(kind)
    if wanted is None or status not in {ConditionStatus.TRUE, ConditionStatus.FALSE}:
        return "info"
    return "ok" if status == wanted else "bad"


__all__ = [
    "escape_text",
    "head",
    "render_dashboard",
    "render_login",
    "render_refused",
    "short_revision",
    "top_bar",
]
