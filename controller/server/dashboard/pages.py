"""Render the drill-down pages as HTML: the alert browser, one alert, the devices, one device
and one job. Inline CSS, no script, every text HTML-escaped, every link inside the service.

Purely computational. Rows carry `data-*` attributes (`data-alert-id`, `data-device`,
`data-patch`, `data-job`) for tests and scrapers; the filters are a plain GET form, so a view
is its URL: bookmark it, share it, or pick one of the presets under "Manage views".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from controller.kinds.notifications import AlertSeverity, EventType
from controller.reports.render import human_time, stamp
from controller.server.dashboard import page
from controller.server.dashboard.drill import (
    AlertPage,
    Compliance,
    DevicePage,
    DevicesPage,
    JobPage,
    Online,
)
from controller.store.alerts import AlertState

DRILL_STYLE = """
.top nav a{color:#f5f7fa;margin-right:14px;text-decoration:none}
.top nav a.current{text-decoration:underline}
form.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#3e4c59;gap:3px}
form.filters select,form.filters input{font:inherit;padding:4px 6px;border:1px solid #b8c0c8;
border-radius:5px}
form.filters button{background:#1f2933;color:#fff;border:0;border-radius:6px;padding:6px 14px;
font:inherit;cursor:pointer}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.facts dt{color:#5c6670}dl.facts dd{margin:0}
pre.output{background:#1f2933;color:#e4e7eb;padding:10px 12px;border-radius:6px;overflow:auto;
max-height:420px;white-space:pre-wrap;font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
ul.views{margin:0;padding-left:18px}ul.views li{margin:3px 0}
td.why{max-width:560px}
"""

PRESETS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Open critical alerts", (("state", AlertState.OPEN), ("severity", AlertSeverity.CRITICAL))),
    (
        "Install failures, last 7 days",
        (("type", EventType.INSTALL_FAILED), ("since", "7d")),
    ),
    (
        "Reboots pending (not resolved)",
        (
            ("type", EventType.REBOOT_PENDING),
            ("state", AlertState.OPEN),
            ("state", AlertState.ACKNOWLEDGED),
        ),
    ),
    ("Acknowledged, not resolved", (("state", AlertState.ACKNOWLEDGED),)),
    ("Resolved in the last 24 hours", (("state", AlertState.RESOLVED), ("since", "24h"))),
    (
        "Policy and feed problems",
        (("type", EventType.POLICY_INVALID), ("type", EventType.FEED_FAILED)),
    ),
)
_SEVERITY_CLASS: dict[str, str] = {s: f"sev-{s.value}" for s in AlertSeverity}
_STATE_BADGE: dict[str, str] = {
    AlertState.OPEN: "bad",
    AlertState.ACKNOWLEDGED: "warn",
    AlertState.RESOLVED: "ok",
}
_COMPLIANCE_BADGE = {"compliant": "ok", "non-compliant": "bad", "unknown": "warn", "none": "info"}
_e = page.escape_text


def _document(title: str, scope: str, current: str, body: Iterable[str]) -> str:
    return "\n".join(
        [
            *page.head(title, refresh=False, extra_style=DRILL_STYLE),
            "<body>",
            page.top_bar(scope, current=current),
            "<main>",
            *body,
            "</main></body></html>",
        ]
    )


def _time(moment: Any) -> str:
    if not isinstance(moment, datetime):
        return '<span class="muted">-</span>'
    return f'<time datetime="{stamp(moment)}">{_e(human_time(moment))}</time>'


def _table(header: Sequence[str], rows: Sequence[str], *, empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(section_id: str, title: str, body: Iterable[str]) -> str:
    return (
        f'<section class="panel wide" id="{section_id}"><h2>{_e(title)}</h2>'
        f"{''.join(body)}</section>"
    )


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are HTML already (escaped by the caller)."""
    return (
        '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"
    )


def _badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{_e(text)}</span>'


def device_href(device_id: str) -> str:
    return "/devices/" + quote(device_id, safe="")


def job_href(job_id: str) -> str:
    return "/jobs/" + quote(job_id, safe="")


def alerts_href(pairs: Iterable[tuple[str, str]]) -> str:
    query = urlencode(list(pairs))
    return "/alerts" + (f"?{query}" if query else "")


def _device_link(device_id: str | None, name: str | None, tenant: str | None) -> str:
    if device_id and name:
        return f'<a href="{_e(device_href(device_id))}">{_e(tenant or "")}/{_e(name)}</a>'
    if device_id:  # a device outside the scope or gone: its id only, no link
        return _e(device_id)
    return _e(tenant or "all tenants")


# --- the alert browser ------------------------------------------------------------------------


def render_alerts(result: AlertPage, *, query: Sequence[tuple[str, str]]) -> str:
    """The alert browser: the filter form, the saved views, the alerts."""
    rows = [_alert_row(a) for a in result.rows]
    more = (
        f" (the newest {result.limit}; narrow the filters to see older ones)"
        if len(rows) >= result.limit
        else ""
    )
    body = [
        "<h1>Alerts</h1>",
        _section("alert-filters", "Filters", [_alert_form(result, query)]),
        _section("views", "Manage views", [_views(query)]),
        _section(
            "alert-list",
            "Alerts",
            [
                (
                    f'<p class="muted"><span data-figure="alert-count">{len(rows)}</span> '
                    f"alert(s){_e(more)}, newest first.</p>"
                ),
                _table(
                    ("#", "When", "Severity", "Kind", "Where", "Message", "State"),
                    rows,
                    empty="No alert matches these filters.",
                ),
            ],
        ),
    ]
    return _document(f"patchctl — alerts — {result.scope}", result.scope, "alerts", body)


def _alert_row(alert: dict[str, Any]) -> str:
    href = f"/alerts/{int(alert['id'])}"
    return (
        f'<tr data-alert-id="{int(alert["id"])}" data-alert="{_e(alert["kind"])}">'
        f'<td><a href="{href}">{int(alert["id"])}</a></td>'
        f"<td>{_time(alert['created_at'])}</td>"
        f'<td class="{_SEVERITY_CLASS.get(str(alert["severity"]), "")}">'
        f"{_e(alert['severity'])}</td>"
        f"<td>{_e(alert['kind'])}</td>"
        f"<td>{_device_link(alert['device_id'], alert['device_name'], alert['tenant'])}</td>"
        f'<td><a href="{href}">{_e(alert["message"])}</a></td>'
        f"<td>{_badge(alert['state'], _STATE_BADGE.get(alert['state'], 'info'))}</td></tr>"
    )


def _select(name: str, label: str, values: Iterable[str], chosen: set[str]) -> str:
    options = "".join(
        f'<option value="{_e(v)}"{" selected" if v in chosen else ""}>{_e(v)}</option>'
        for v in values
    )
    return f'<label>{_e(label)}<select name="{name}" multiple size="4">{options}</select></label>'


def _text(name: str, label: str, value: str, hint: str) -> str:
    return (
        f'<label>{_e(label)}<input name="{name}" value="{_e(value)}" placeholder="{_e(hint)}" '
        'size="16"></label>'
    )


def _alert_form(result: AlertPage, query: Sequence[tuple[str, str]]) -> str:
    chosen: dict[str, set[str]] = {}
    for key, value in query:
        chosen.setdefault(key, set()).add(value)

    def one(key: str) -> str:
        return next(iter(sorted(chosen.get(key, {""}))))

    return (
        '<form class="filters" method="get" action="/alerts" id="filters">'
        + _select("type", "Kind", (k.value for k in EventType), chosen.get("type", set()))
        + _select(
            "severity", "Severity", (s.value for s in AlertSeverity), chosen.get("severity", set())
        )
        + _select("state", "State", (s.value for s in AlertState), chosen.get("state", set()))
        + _text("device", "Device (name or id)", one("device"), "web-01")
        + _text("tenant", "Tenant", one("tenant"), result.scope)
        + _text("since", "Since", one("since"), "24h, 7d, 2026-12-01")
        + _text("until", "Until", one("until"), "2026-12-07T06:00Z")
        + '<button type="submit">Apply</button> <a href="/alerts">Clear</a></form>'
        + '<p class="muted">Several values of one filter are alternatives; the filters combine. '
        "Alerts that concern every tenant (a policy that does not validate) show in every "
        "tenant's view.</p>"
    )


def _views(query: Sequence[tuple[str, str]]) -> str:
    links = "".join(
        f'<li><a data-view="{_e(name)}" href="{_e(alerts_href(pairs))}">{_e(name)}</a></li>'
        for name, pairs in PRESETS
    )
    this = alerts_href(query)
    return (
        '<p class="muted">A view is its URL: bookmark this page to keep the filters. '
        f'This view: <a id="this-view" href="{_e(this)}"><code>{_e(this)}</code></a></p>'
        f'<ul class="views">{links}</ul>'
    )


# --- one alert --------------------------------------------------------------------------------


def render_alert(alert: dict[str, Any], *, scope: str) -> str:
    """One alert: every field, its details, and links to its device, job and like alerts."""
    details = alert.get("details") or {}
    job_id = details.get("job") if isinstance(details, dict) else None
    similar = alerts_href((("type", str(alert["kind"])),))
    facts = [
        ("Kind", _e(alert["kind"])),
        (
            "Severity",
            (
                f'<span class="{_SEVERITY_CLASS.get(str(alert["severity"]), "")}">'
                f"{_e(alert['severity'])}</span>"
            ),
        ),
        ("State", _badge(alert["state"], _STATE_BADGE.get(alert["state"], "info"))),
        ("Raised", _time(alert["created_at"])),
        ("Acknowledged", _time(alert.get("acknowledged_at"))),
        ("Acknowledged by", _e(alert.get("acknowledged_by") or "-")),
        ("Resolved", _time(alert.get("resolved_at"))),
        ("Tenant", _e(alert["tenant"] or "every tenant")),
        ("Device", _device_link(alert["device_id"], alert["device_name"], alert["tenant"])),
        ("Message", _e(alert["message"])),
    ]
    if isinstance(job_id, str):
        facts.append(("Job", f'<a href="{_e(job_href(job_id))}">{_e(job_id)}</a>'))
    body = [
        (
            f'<h1 data-alert-id="{int(alert["id"])}">Alert {int(alert["id"])}: '
            f"{_e(alert['kind'])}</h1>"
        ),
        _section("alert", "What happened", [_facts(facts)]),
        _section(
            "alert-details",
            "Details",
            [f'<pre class="output">{_e(json.dumps(details, indent=2, default=str))}</pre>'],
        ),
        (
            f'<p><a href="{_e(similar)}">Every {_e(alert["kind"])} alert</a> · '
            '<a href="/alerts">All alerts</a></p>'
        ),
    ]
    return _document(f"patchctl — alert {int(alert['id'])}", scope, "alerts", body)


# --- the devices ------------------------------------------------------------------------------


def render_devices(result: DevicesPage) -> str:
    """The devices of the scope that pass the filters."""
    rows = [
        f'<tr data-device="{_e(r.name)}"><td><a href="{_e(device_href(r.id))}">{_e(r.tenant)}/'
        f"{_e(r.name)}</a></td><td>{_e(r.os)}</td>"
        f"<td>{_badge(r.compliance.value, _COMPLIANCE_BADGE[r.compliance.value])}</td>"
        f"<td>{_badge('online', 'ok') if r.online else _badge('offline', 'bad')}</td>"
        f"<td>{_time(r.last_seen)}</td><td>{_time(r.last_scan_at)}</td>"
        f"<td>{'yes' if r.reboot_required else 'no'}</td></tr>"
        for r in result.rows
    ]
    shown = f" (the first {len(rows)} are listed)" if result.matched > len(result.rows) else ""
    body = [
        "<h1>Devices</h1>",
        _section("device-filters", "Filters", [_device_form(result)]),
        _section(
            "device-list",
            "Devices",
            [
                (
                    f'<p class="muted"><span data-figure="device-count">{result.matched}</span> '
                    f"device(s) match{_e(shown)}.</p>"
                ),
                _table(
                    ("Device", "OS", "Compliance", "Agent", "Last seen", "Last scan", "Reboot"),
                    rows,
                    empty="No device matches these filters.",
                ),
            ],
        ),
    ]
    return _document(f"patchctl — devices — {result.scope}", result.scope, "devices", body)


def _choice(name: str, label: str, values: Iterable[str], chosen: str | None) -> str:
    options = '<option value="">any</option>' + "".join(
        f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v)}</option>'
        for v in values
    )
    return f'<label>{_e(label)}<select name="{name}">{options}</select></label>'


def _device_form(result: DevicesPage) -> str:
    f = result.filters
    groups = (
        _choice("group", "Group", result.groups, f.group)
        if result.groups
        else '<span class="muted">Groups: no policy revision is loaded in this process.</span>'
    )
    return (
        '<form class="filters" method="get" action="/devices" id="filters">'
        + _choice(
            "compliance",
            "Compliance",
            (c.value for c in Compliance),
            f.compliance.value if f.compliance else None,
        )
        + _choice(
            "online", "Agent", (o.value for o in Online), f.online.value if f.online else None
        )
        + groups
        + '<button type="submit">Apply</button> <a href="/devices">Clear</a></form>'
        + '<p class="muted">Compliance is the worst verdict over the baselines that target the '
        "device (none: no baseline does). Online: checked in within two poll intervals.</p>"
    )


# --- one device -------------------------------------------------------------------------------


def render_device(result: DevicePage, *, scope: str) -> str:
    """One device: facts, compliance, patches with explain's reasons, jobs and alerts."""
    d = result.device
    facts = [
        ("Tenant", _e(d["tenant"])),
        ("Hostname", _e(d["hostname"])),
        ("OS", _e(" ".join(p for p in (d["os_family"], d["os_name"], d["os_version"]) if p))),
        ("Role", _e(d["role"])),
        ("Agent", _badge("online", "ok") if result.online else _badge("offline", "bad")),
        ("Last seen", _time(d["last_seen"])),
        ("Last scan", _time(d["last_scan_at"])),
        ("Reboot required", _e("yes" if d["reboot_required"] else "no")),
        ("Agent version", _e(d["agent_version"])),
    ]
    if result.explanation is not None and result.explanation.next_window:
        facts.append(("Next install window", _e(result.explanation.next_window)))
    body = [
        f'<h1 data-device="{_e(d["name"])}">{_e(d["tenant"])}/{_e(d["name"])}</h1>',
        _section("device", "Device", [_facts(facts)]),
        _section("compliance", "Compliance per baseline", [_compliance_table(result)]),
        _section("patches", "Patches", _patches(result)),
        _section("jobs", "Jobs", [_jobs_table(result)]),
        _section(
            "alerts",
            "Alerts",
            [
                _table(
                    ("#", "When", "Severity", "Kind", "Where", "Message", "State"),
                    [_alert_row(a) for a in result.alerts],
                    empty="No alerts about this device.",
                ),
                (
                    f'<p><a href="{_e(alerts_href((("device", str(d["id"])),)))}">'
                    "Every alert of this device</a></p>"
                ),
            ],
        ),
    ]
    return _document(f"patchctl — {d['tenant']}/{d['name']}", scope, "devices", body)


def _compliance_table(result: DevicePage) -> str:
    rows = [
        f'<tr data-baseline="{_e(c["baseline"])}"><td>{_e(c["baseline"])}</td>'
        f"<td>{_badge(str(c['state']), _COMPLIANCE_BADGE.get(str(c['state']), 'info'))}</td>"
        f"<td>{_time(c['evaluated_at'])}</td><td><code>"
        f"{_e(page.short_revision(c['revision']))}</code></td></tr>"
        for c in result.compliance
    ]
    return _table(
        ("Baseline", "Verdict", "Evaluated", "Revision"), rows, empty="No baseline targets it."
    )


def _patches(result: DevicePage) -> list[str]:
    rows = [
        f'<tr data-patch="{_e(p["id"])}"><td>{_e(p["id"])}</td>'
        f"<td>{_e(p.get('title', ''))}</td><td>{_e(p.get('severity', ''))}</td>"
        f"<td>{_e(p['state'])}</td><td>{_e(p['source'])}</td>"
        f'<td class="why">{_e(result.verdict(str(p["id"])) or "-")}</td></tr>'
        for p in result.patches
    ]
    if result.explanation is None:
        note = (
            '<p class="muted">Why: needs the policy revision the reconcile loop loads; this '
            "process runs none yet (<code>patchctl explain DEVICE</code> on the controller "
            "host answers).</p>"
        )
    else:
        note = (
            f'<p class="muted">Why: <code>patchctl explain</code> against '
            f"<code>{_e(page.short_revision(result.revision))}</code>.</p>"
        )
    table = _table(
        ("Patch", "Title", "Severity", "State", "Source", "Why"),
        rows,
        empty="No scan reported yet.",
    )
    return [note, table]


def _jobs_table(result: DevicePage) -> str:
    rows = [
        f'<tr data-job="{_e(j["id"])}"><td><a href="{_e(job_href(j["id"]))}">'
        f"<code>{_e(j['id'])}</code></a></td><td>{_e(j['kind'])}</td><td>{_e(j['state'])}</td>"
        f"<td>{_e(_listed(j['patch_ids']))}</td><td>{_time(j['created_at'])}</td>"
        f"<td>{_time(j['finished_at'])}</td></tr>"
        for j in result.jobs
    ]
    return _table(
        ("Job", "Kind", "State", "Patches", "Created", "Finished"), rows, empty="No jobs."
    )


def _listed(patch_ids: Any) -> str:
    ids = [str(p) for p in patch_ids] if isinstance(patch_ids, list) else []
    return ", ".join(ids[:4]) + (f", +{len(ids) - 4}" if len(ids) > 4 else "")


# --- one job ----------------------------------------------------------------------------------


def render_job(result: JobPage, *, scope: str) -> str:
    """One job: what it was, per-patch results, its output excerpt and its events."""
    j = result.job
    facts = [
        ("Device", _device_link(j["device_id"], result.device_name, j["tenant"])),
        ("Kind", _e(j["kind"])),
        ("State", _e(j["state"])),
        ("Ended by the controller", _e(j["end_reason"] or "-")),
        ("Revision", f"<code>{_e(page.short_revision(j['revision']))}</code>"),
        ("Window", _e(j["window_key"] or "-")),
        ("Created", _time(j["created_at"])),
        ("Delivered", _time(j["delivered_at"])),
        ("Finished", _time(j["finished_at"])),
        ("Deadline", _time(j["deadline"])),
        ("Reboot required", _e({True: "yes", False: "no"}.get(j["reboot_required"], "-"))),
    ]
    results = [
        f'<tr data-patch="{_e(patch)}" data-result="{_e(outcome)}"><td>{_e(patch)}</td>'
        f'<td class="{"sev-critical" if outcome == "failed" else ""}">{_e(outcome)}</td>'
        f"<td>{_e(reason)}</td></tr>"
        for patch, outcome, reason in result.results
    ]
    output = (
        '<p class="muted">No output stored.</p>'
        if result.output is None
        else (
            ('<p class="muted">The last 4,000 characters.</p>' if result.output_truncated else "")
            + f'<pre class="output" id="job-output">{_e(result.output)}</pre>'
        )
    )
    events = [
        f"<tr><td>{_time(e['received_at'])}</td><td>{_e(e['state'])}</td>"
        f"<td>{_e((e['output'] or '')[-200:])}</td></tr>"
        for e in result.events
    ]
    body = [
        f'<h1 data-job="{_e(j["id"])}">Job <code>{_e(j["id"])}</code></h1>',
        _section("job", "Job", [_facts(facts)]),
        _section(
            "results",
            "Per-patch results",
            [_table(("Patch", "Result", "Reason"), results, empty="No per-patch results yet.")],
        ),
        _section("output", "Output", [output]),
        _section(
            "events",
            "Events from the agent",
            [_table(("Received", "State", "Output (end)"), events, empty="No events yet.")],
        ),
    ]
    return _document(f"patchctl — job {j['id']}", scope, "devices", body)


__all__ = [
    "alerts_href",
    "device_href",
    "job_href",
    "render_alert",
    "render_alerts",
    "render_device",
    "render_devices",
    "render_job",
]
