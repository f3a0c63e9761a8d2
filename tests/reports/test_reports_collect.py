"""Collecting a report from the store: verdicts, severities, reasons, reboots, installs, trend."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from reportfleet import FAILURE_REASON, LINUX, NOW, OTHER, REVISION, WINDOWS

from controller.core.compliance import ComplianceState, PatchState
from controller.kinds.common import Severity
from controller.reports import collect
from controller.reports.model import (
    BaselineSummary,
    Finding,
    InstallDay,
    PendingApproval,
    PendingReboot,
    StateCounts,
    TrendPoint,
)
from controller.store import Store, reports, schema


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (None, ["win-01", "win-02", "web-01", "web-02", "db-01"]),
        ("acme", ["win-01", "win-02", "web-01", "web-02"]),
        ("acme/retail", ["web-01", "web-02"]),
        ("other", ["db-01"]),
        ("acm", []),
    ],
    ids=[
        "every-tenant",
        "partner-sees-clients",
        "client",
        "other-partner",
        "prefix-is-not-a-tenant",
    ],
)
def test_report_covers_the_tenant_and_its_clients(
    fleet_store: Store, tenant: str | None, expected: list[str]
) -> None:
    """A partner's report lists its clients' devices; a client's only its own."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant=tenant, now=NOW, revision=REVISION)
    assert expected == [row.device for row in data.devices]


def test_baseline_summaries_break_non_compliance_down_by_severity(fleet_store: Store) -> None:
    """Each baseline counts its verdicts and its non-compliant devices by worst severity."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant=None, now=NOW, revision=REVISION)
    assert (
        BaselineSummary(
            LINUX,
            StateCounts(compliant=1, non_compliant=1, unknown=0),
            non_compliant_by_severity=((Severity.CRITICAL, 1),),
            findings_by_severity=((Severity.CRITICAL, 1), (Severity.IMPORTANT, 1)),
        ),
        BaselineSummary(
            WINDOWS,
            StateCounts(compliant=0, non_compliant=1, unknown=1),
            non_compliant_by_severity=((Severity.MODERATE, 1),),
            findings_by_severity=((Severity.MODERATE, 1),),
        ),
        BaselineSummary(OTHER, StateCounts(compliant=1, non_compliant=0, unknown=0)),
    ) == data.baselines
    assert StateCounts(compliant=2, non_compliant=2, unknown=1) == data.counts
    assert 40.0 == data.counts.compliant_percent
    assert (5, 2) == (data.device_count, data.compliant_devices)


def test_findings_carry_severity_and_the_latest_failure_reason(fleet_store: Store) -> None:
    """Severity comes from the catalogue, else from the agent; a failure names its last reason."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant="acme", now=NOW, revision=REVISION)
    rows = {row.device: row for row in data.devices}
    assert (
        Finding("USN-1", PatchState.MISSING, Severity.CRITICAL),
        Finding("USN-2", PatchState.FAILED, Severity.IMPORTANT, FAILURE_REASON),
    ) == rows["web-01"].findings
    assert (
        Finding("KB1", PatchState.MISSING, Severity.MODERATE),
        Finding("KB2", PatchState.INSTALLED_PENDING_REBOOT, Severity.UNSPECIFIED),
    ) == rows["win-01"].findings
    assert ComplianceState.UNKNOWN == rows["win-02"].state
    assert (3, False, True) == (
        rows["web-01"].installed,
        rows["web-01"].reboot_pending,
        rows["win-01"].reboot_pending,
    )


def test_pending_reboots_and_approvals_are_listed_per_device(fleet_store: Store) -> None:
    """Reboots come from the OS flag and the compliance record; approvals from the plan given."""
    with fleet_store.write() as conn:
        data = collect(
            conn,
            tenant="acme/logistics",
            now=NOW,
            revision=REVISION,
            pending_approvals={"d-win-01": ["KB9", "KB1"], "d-web-01": ["USN-1"], "d-win-02": []},
        )
    assert (
        PendingReboot("d-win-01", "win-01", "acme/logistics", ("KB2",), data.devices[0].scanned_at),
    ) == data.pending_reboots
    assert (PendingApproval("d-win-01", "win-01", "acme/logistics", ("KB1", "KB9")),) == (
        data.pending_approvals
    )


def test_pending_approvals_are_unknown_without_a_plan(fleet_store: Store) -> None:
    """Without the plan's figures the report says so rather than claiming zero."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant=None, now=NOW, revision=REVISION)
    assert data.pending_approvals is None


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (
            None,
            {
                date(2026, 12, 5): InstallDay(date(2026, 12, 5), 1, 1),
                date(2026, 12, 6): InstallDay(date(2026, 12, 6), 1, 0),
                date(2026, 12, 7): InstallDay(date(2026, 12, 7), 1, 0),
            },
        ),
        (
            "acme/retail",
            {date(2026, 12, 5): InstallDay(date(2026, 12, 5), 1, 1)},
        ),
    ],
    ids=["fleet", "client"],
)
def test_installs_are_counted_per_day_for_thirty_days(
    fleet_store: Store, tenant: str | None, expected: dict[date, InstallDay]
) -> None:
    """Thirty days ending today, installed and failed patches per day; older jobs are left out."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant=tenant, now=NOW, revision=REVISION)
    assert 30 == len(data.installs)
    assert (date(2026, 11, 8), date(2026, 12, 7)) == (data.installs[0].day, data.installs[-1].day)
    assert expected == {d.day: d for d in data.installs if d.installed or d.failed}


def test_collecting_adds_todays_point_to_the_stored_trend(fleet_store: Store) -> None:
    """Today's compliant share joins the stored points and is saved for the next report."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant="acme", now=NOW, revision=REVISION)
    expected = (
        TrendPoint(date(2026, 12, 5), 40.0),
        TrendPoint(date(2026, 12, 6), 45.5),
        TrendPoint(date(2026, 12, 7), 25.0),
    )
    assert expected == data.trend
    with fleet_store.read() as conn:
        stored = conn.execute(
            sa.select(schema.status.c.value).where(schema.status.c.key == "trend:acme")
        ).scalar_one()
    assert {"points": {"2026-12-05": 40.0, "2026-12-06": 45.5, "2026-12-07": 25.0}} == stored


def test_a_read_only_collect_leaves_the_trend_alone(fleet_store: Store) -> None:
    """With keep_trend=False the status table is not written."""
    with fleet_store.read() as conn:
        data = collect(conn, tenant=None, now=NOW, revision=REVISION, keep_trend=False)
        stored = conn.execute(
            sa.select(schema.status.c.key).where(schema.status.c.key == "trend:*")
        ).all()
    assert ((TrendPoint(date(2026, 12, 7), 40.0),), []) == (data.trend, stored)


def test_an_agent_reported_unknown_patch_takes_the_agent_severity(fleet_store: Store) -> None:
    """A patch the catalogue does not know, reported by the agent API, gets the agent's
    severity in the report (the stored scan form, not a flat list)."""
    with fleet_store.write() as conn:
        reports.write_reports(
            conn,
            [
                reports.Report(
                    device_id="d-web-01",
                    scan=reports.Scan(
                        scanned_at=NOW,
                        reboot_required=False,
                        missing=(("USN-9999-1", {"severity": "High"}), ("USN-1", {})),
                    ),
                )
            ],
            now=NOW,
        )
        conn.execute(
            schema.compliance.update()
            .where(schema.compliance.c.device_id == "d-web-01")
            .values(patches={"missing": ["USN-9999-1", "USN-1"]})
        )
        data = collect(conn, tenant="acme/retail", now=NOW, revision=REVISION)
    rows = {row.device: row for row in data.devices}
    assert (
        Finding("USN-9999-1", PatchState.MISSING, Severity.IMPORTANT),
        Finding("USN-1", PatchState.MISSING, Severity.CRITICAL),
    ) == rows["web-01"].findings
