"""Each report format's content against the known fleet (see `reportfleet`)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from reportfleet import FAILURE_REASON, NOW, REVISION

from controller.core.compliance import ComplianceState, PatchState
from controller.kinds.common import Severity
from controller.kinds.reports import ReportFormat
from controller.reports import (
    collect,
    narrow,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    render_summary,
    report_files,
)
from controller.reports.model import DeviceRow, Finding, ReportData
from controller.reports.render import CSV_COLUMNS
from controller.store import Store

STAMP = "2026-12-07T06:00:00Z"


@pytest.fixture
def report(fleet_store: Store) -> ReportData:
    """The report of partner `acme`, with one device's patches pending approval."""
    with fleet_store.write() as conn:
        return collect(
            conn,
            tenant="acme",
            now=NOW,
            revision=REVISION,
            pending_approvals={"d-win-01": ["KB1"]},
        )


def row(device: str, **changes: object) -> DeviceRow:
    values: dict[str, object] = {
        "device_id": f"id-{device}",
        "device": device,
        "tenant": "acme",
        "os": "linux",
        "baseline": "Baseline acme/web",
        "state": ComplianceState.COMPLIANT,
        "evaluated_at": NOW,
        "revision": REVISION,
    }
    values.update(changes)
    return DeviceRow(**values)  # type: ignore[arg-type]


# --- JSON -----------------------------------------------------------------------------------


def test_json_holds_the_summary_and_every_verdict(report: ReportData) -> None:
    """The JSON document's summary and a device entry, field by field."""
    document = json.loads(render_json(report))
    assert {
        "apiVersion": "patchctl/v1",
        "kind": "ComplianceReport",
        "tenant": "acme",
        "subject": None,
        "revision": REVISION,
        "generatedAt": STAMP,
    } == {key: document[key] for key in list(document)[:6]}
    assert {
        "devices": 4,
        "compliantDevices": 1,
        "verdicts": {"compliant": 1, "non-compliant": 2, "unknown": 1},
        "compliantPercent": 25.0,
        "pendingApprovals": 1,
        "pendingReboots": 1,
        "installs": {"installed": 2, "failed": 1},
    } == document["summary"]
    web = next(d for d in document["devices"] if d["device"] == "web-01")
    assert {
        "device": "web-01",
        "deviceId": "d-web-01",
        "tenant": "acme/retail",
        "os": "linux",
        "baseline": "acme/linux-web",
        "state": "non-compliant",
        "scannedAt": "2026-12-07T03:00:00Z",
        "evaluatedAt": "2026-12-07T05:50:00Z",
        "revision": REVISION,
        "installed": 3,
        "rebootPending": False,
        "missing": [{"id": "USN-1", "severity": "critical"}],
        "failed": [{"id": "USN-2", "severity": "important", "reason": FAILURE_REASON}],
        "pendingReboot": [],
        "rejected": [],
    } == web
    assert [
        {"day": "2026-12-05", "compliantPercent": 40.0},
        {"day": "2026-12-06", "compliantPercent": 45.5},
        {"day": "2026-12-07", "compliantPercent": 25.0},
    ] == document["trend"]
    assert [
        {"device": "win-01", "deviceId": "d-win-01", "tenant": "acme/logistics", "patches": ["KB1"]}
    ] == document["pendingApprovals"]


def test_rendering_is_deterministic(report: ReportData) -> None:
    """The same report renders to the same bytes in every format."""
    formats = list(ReportFormat)
    assert report_files(report, formats) == report_files(report, formats)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_has_one_row_per_device_and_baseline(report: ReportData) -> None:
    """Every verdict is a row, stamped with the report's revision and time."""
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert list(CSV_COLUMNS) == list(rows[0])
    assert ["win-01", "win-02", "web-01", "web-02"] == [r["device"] for r in rows]
    assert {
        "tenant": "acme/retail",
        "device": "web-01",
        "device_id": "d-web-01",
        "os": "linux",
        "baseline": "acme/linux-web",
        "state": "non-compliant",
        "scanned_at": "2026-12-07T03:00:00Z",
        "missing_count": "1",
        "failed_count": "1",
        "worst_severity": "critical",
        "reboot_pending": "no",
        "missing": "USN-1 (critical)",
        "failed": f"USN-2 (important): {FAILURE_REASON}",
        "pending_reboot": "",
        "rejected": "",
        "evaluated_revision": REVISION,
        "report_revision": REVISION,
        "generated_at": STAMP,
    } == rows[2]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("@sum", "'@sum"),
        ("-x", "'-x"),
        ("web-01", "web-01"),
    ],
    ids=["equals", "plus", "at", "minus", "plain"],
)
def test_csv_cells_never_start_a_formula(name: str, expected: str) -> None:
    """Text an agent chose cannot run as a spreadsheet formula."""
    data = ReportData(tenant="acme", revision=REVISION, generated_at=NOW, devices=(row(name),))
    rows = list(csv.DictReader(io.StringIO(render_csv(data))))
    assert expected == rows[0]["device"]


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_puts_the_summary_tables_first(report: ReportData) -> None:
    """Summary and per-baseline tables come before the details."""
    text = render_markdown(report)
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert [
        "Summary",
        "Compliance by baseline",
        "Compliance trend",
        "Installs of the last 30 days",
        "Non-compliant devices",
        "Unknown compliance (no fresh scan)",
        "Pending approvals",
        "Pending reboots",
        "Every device",
    ] == headings
    assert text.startswith(
        "# Patch compliance: acme\n\n"
        f"Policy revision `{REVISION}`, generated 2026-12-07 06:00 UTC.\n"
    )
    assert (
        "| Baseline | Compliant | Non-compliant | Unknown | Compliant % | By severity |\n"
        "| --- | --: | --: | --: | --: | --- |\n"
        "| acme/linux-web | 1 | 1 | 0 | 50.0 | critical 1 |\n"
        "| acme/windows-base | 0 | 1 | 1 | 0.0 | moderate 1 |\n"
    ) in text


def test_markdown_details_name_patches_reasons_and_reboots(report: ReportData) -> None:
    """Failed patches carry their reason, escaped so it cannot break the table or add HTML."""
    text = render_markdown(report)
    assert (
        "| acme/retail/web-01 | acme/linux-web | USN-1 (critical) | USN-2 (important): dpkg: "
        "error \\| &lt;b&gt;exit 100&lt;/b&gt; | no |"
    ) in text
    assert "| acme/logistics/win-01 | 2026-12-07T05:00:00Z | KB2 |" in text
    assert "| acme/logistics/win-01 | KB1 |" in text
    assert "<b>" not in text


def test_markdown_caps_long_tables(report: ReportData) -> None:
    """Past `max_rows` a table ends with a count and a pointer to the complete files."""
    text = render_markdown(report, max_rows=1)
    assert "… and 3 more: the CSV and JSON reports list every row." in text


def test_summary_is_the_head_of_the_markdown_report(report: ReportData) -> None:
    """The notification summary is exactly the report's summary tables."""
    summary = render_summary(report)
    assert render_markdown(report).startswith(summary.rstrip("\n"))
    assert "## Non-compliant devices" not in summary


def test_unknown_pending_approvals_are_said_to_be_unknown() -> None:
    """Without a plan the report says the figure is not known."""
    data = ReportData(tenant=None, revision=None, generated_at=NOW)
    text = render_markdown(data)
    assert "| Pending approvals | not known (no plan yet) |" in text
    assert "Policy revision `no applied revision`" in text


# --- HTML -----------------------------------------------------------------------------------


def test_html_is_one_self_contained_page(report: ReportData) -> None:
    """No script, no external asset, a policy forbidding both, and four inline SVG charts."""
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert [] == re.findall(r"<script|https?://|\bsrc=|\bhref=|url\(|@import", page)
    assert (
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
    ) in page
    assert 4 == page.count("<svg ")
    assert 1 == page.count("<polyline")


def test_html_is_stamped_and_escapes_agent_text(report: ReportData) -> None:
    """The revision and time are on the page; an agent's HTML is shown, not run."""
    page = render_html(report)
    assert f'<meta name="patchctl-revision" content="{REVISION}">' in page
    assert f'<time datetime="{STAMP}">2026-12-07 06:00 UTC</time>' in page
    assert "USN-2: dpkg: error | &lt;b&gt;exit 100&lt;/b&gt;" in page
    assert "<b>exit" not in page


def test_html_charts_draw_the_breakdown_and_the_trend(report: ReportData) -> None:
    """The donut has a segment per state present and the trend one point per day."""
    page = render_html(report)
    assert ["compliant: 1", "non-compliant: 2", "unknown: 1"] == re.findall(
        r"<title>((?:non-)?compliant: \d+|unknown: \d+)</title></circle>", page
    )
    assert ["2026-12-05: 40.0%", "2026-12-06: 45.5%", "2026-12-07: 25.0%"] == re.findall(
        r"<title>(\d{4}-\d\d-\d\d: [\d.]+%)</title></circle>", page
    )


def test_html_of_an_empty_fleet_still_renders() -> None:
    """No verdicts, no trend, no installs: the page says so instead of drawing nothing."""
    data = ReportData(tenant="acme", revision=REVISION, generated_at=NOW)
    page = render_html(data)
    assert "No history yet: the trend starts with this report." in page
    assert "No verdicts yet." in page


# --- narrowing and files --------------------------------------------------------------------


def test_narrowing_to_a_baseline_recounts_from_its_rows(report: ReportData) -> None:
    """A baseline's report holds only its verdicts and drops the scope-wide history."""
    narrowed = narrow(report, baseline="Baseline acme/linux-web")
    assert (["web-01", "web-02"], "acme — acme/linux-web", (), ()) == (
        [r.device for r in narrowed.devices],
        narrowed.scope,
        narrowed.trend,
        narrowed.pending_reboots,
    )
    assert 50.0 == narrowed.counts.compliant_percent


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (None, ["compliance.csv", "compliance.md"]),
        (
            "acme/retail",
            ["tenants/acme/retail/compliance.csv", "tenants/acme/retail/compliance.md"],
        ),
    ],
    ids=["fleet", "client"],
)
def test_report_files_are_laid_out_by_tenant(tenant: str | None, expected: list[str]) -> None:
    """Every tenant's reports live in their own folder; the fleet's at the top."""
    data = ReportData(tenant=tenant, revision=REVISION, generated_at=NOW)
    files = report_files(data, [ReportFormat.MARKDOWN, ReportFormat.CSV, ReportFormat.MARKDOWN])
    assert expected == sorted(files)


def test_worst_severity_orders_critical_first() -> None:
    """A device's worst finding is its most severe one."""
    device = row(
        "web-01",
        findings=(
            Finding("A", PatchState.MISSING, Severity.LOW),
            Finding("B", PatchState.FAILED, Severity.CRITICAL),
        ),
    )
    assert Severity.CRITICAL == device.worst_severity
