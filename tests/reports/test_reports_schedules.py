"""ReportSchedules: when they are due, which scopes they collect, which files they write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from reportfleet import NOW, REVISION

from controller.kinds.reports import ReportSchedule, ReportScope
from controller.reports import collect, due_reports, track_runs
from controller.reports.schedules import report_scopes, schedule_files, schedule_key
from controller.store import Store

MONDAY_6 = {"cron": "0 6 * * MON"}  # 2026-12-07 is a Monday


def schedule(
    name: str = "weekly",
    *,
    tenant: str | None = None,
    recurrence: dict[str, Any] | None = None,
    timezone: str = "UTC",
    scope: str = "tenant",
    formats: tuple[str, ...] = ("markdown", "json"),
) -> ReportSchedule:
    metadata: dict[str, Any] = {"name": name}
    if tenant is not None:
        metadata["tenant"] = tenant
    return ReportSchedule.model_validate(
        {
            "apiVersion": "patchctl/v1",
            "kind": "ReportSchedule",
            "metadata": metadata,
            "spec": {
                "recurrence": recurrence or MONDAY_6,
                "timezone": timezone,
                "formats": list(formats),
                "scope": scope,
            },
        }
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "now", "timezone", "expected"),
    [
        (None, "2026-12-07T06:00", "UTC", False),
        ("2026-12-01T00:00", "2026-12-07T05:59", "UTC", False),
        ("2026-12-01T00:00", "2026-12-07T06:00", "UTC", True),
        ("2026-12-07T06:00", "2026-12-07T07:00", "UTC", False),
        ("2026-11-20T00:00", "2026-12-07T07:00", "UTC", True),
        ("2026-12-01T00:00", "2026-12-07T05:30", "Europe/Berlin", True),
        ("2026-12-01T00:00", "2026-12-07T04:59", "Europe/Berlin", False),
    ],
    ids=[
        "never-seen-waits",
        "before-the-start",
        "at-the-start",
        "already-ran",
        "missed-runs-run-once",
        "in-its-time-zone",
        "before-its-local-start",
    ],
)
def test_due_reports_follow_the_recurrence(
    last: str | None, now: str, timezone: str, expected: bool
) -> None:
    """A schedule is due when a start lies between its last run and now."""
    weekly = schedule(timezone=timezone)
    last_runs = {} if last is None else {schedule_key(weekly): at(last)}
    assert expected == (weekly in due_reports([weekly], last_runs, at(now)))


def test_track_runs_records_new_ran_and_forgets_removed_schedules() -> None:
    """New schedules are first seen now, ones that ran move to now, removed ones are dropped."""
    kept, ran, new = schedule("kept"), schedule("ran"), schedule("new", tenant="acme")
    last_runs = {"*/kept": at("2026-12-01T00:00"), "*/ran": at("2026-11-30T06:00"), "*/gone": NOW}
    expected = {"*/kept": at("2026-12-01T00:00"), "*/ran": NOW, "acme/new": NOW}
    assert expected == track_runs([kept, ran, new], last_runs, NOW, ran=["*/ran"])


@pytest.mark.parametrize(
    ("tenant", "scope", "expected"),
    [
        ("acme", "tenant", ("acme",)),
        (None, "tenant", ("acme", "acme/retail")),
        (None, "baseline", (None,)),
        ("acme/retail", "device", ("acme/retail",)),
    ],
    ids=["own-tenant", "each-tenant", "fleet-by-baseline", "client-by-device"],
)
def test_report_scopes(tenant: str | None, scope: str, expected: tuple[str | None, ...]) -> None:
    """A schedule of every tenant with `scope: tenant` writes one report per tenant."""
    assert expected == report_scopes(
        schedule(tenant=tenant, scope=scope), ["acme/retail", "acme", "acme"]
    )


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (ReportScope.TENANT, ["tenants/acme/compliance.md"]),
        (
            ReportScope.BASELINE,
            [
                "tenants/acme/baselines/acme.linux-web.md",
                "tenants/acme/baselines/acme.windows-base.md",
            ],
        ),
        (
            ReportScope.DEVICE,
            [
                "tenants/acme/devices/acme.logistics.win-01.md",
                "tenants/acme/devices/acme.logistics.win-02.md",
                "tenants/acme/devices/acme.retail.web-01.md",
                "tenants/acme/devices/acme.retail.web-02.md",
            ],
        ),
    ],
    ids=["tenant", "baseline", "device"],
)
def test_schedule_files_split_by_scope(
    fleet_store: Store, scope: ReportScope, expected: list[str]
) -> None:
    """One file per format and per tenant, baseline or device."""
    with fleet_store.write() as conn:
        data = collect(conn, tenant="acme", now=NOW, revision=REVISION)
    files = schedule_files([data], schedule(scope=scope.value, formats=("markdown",)))
    assert expected == sorted(files)
