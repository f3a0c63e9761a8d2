"""Grouped info alerts and set-based alert writes (issue 14.3), on SQLite and PostgreSQL.

One approval reaching 1,000 devices in one PatchWindow occurrence raises one `Search` alert for
the tenant (counts and a bounded sample of names), not 1,000; a second pass raises nothing; the
grouped alert still reaches a Notification subscribed to `Search` in its tenant."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from test_reconcile import IN_WINDOW, reconciler, seed_catalogue

from controller.kinds.notifications import Notification
from controller.notify import events, route
from controller.store import Store, devices, reports, schema
from controller.testing import PolicyRepo

FLEET = 1000
TENANT = "acme/retail"


def enrol_fleet(store: Store, count: int) -> list[str]:
    """`count` Windows servers of acme/retail, each missing KB5044284 (approved by the example's
    windows-weekly window) and online inside the open occurrence."""
    enrolled_at = IN_WINDOW - timedelta(days=1)
    with store.write() as conn:
        ids = [
            devices.enrol(
                conn,
                devices.Enrolment(
                    tenant=TENANT,
                    hostname=f"web-{n:04d}",
                    os_family="windows",
                    os_name="Windows Server 2022",
                    os_version="21H2",
                    role="server",
                    agent_version="1.0",
                    labels={"env": "prod"},
                ),
                poll_interval=60,
                now=enrolled_at,
            ).device_id
            for n in range(count)
        ]
    scanned = IN_WINDOW - timedelta(minutes=5)
    with store.write() as conn:
        reports.write_reports(
            conn,
            [
                reports.Report(
                    device_id=device_id,
                    scan=reports.Scan(
                        scanned_at=scanned,
                        reboot_required=False,
                        missing=(("KB5044284", {}), ("KB5099999", {})),
                        installed=(),
                    ),
                )
                for device_id in ids
            ],
            now=scanned,
        )
        conn.execute(schema.devices.update().values(last_seen=IN_WINDOW - timedelta(seconds=10)))
    return ids


def alert_rows(store: Store, kind: str) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(schema.alerts).where(schema.alerts.c.kind == kind).order_by("id")
        ).mappings()
        return [dict(row) for row in rows]


def test_one_approval_over_1000_devices_raises_one_search_alert(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """1,000 installs issued in one pass → one Search alert with the counts; pass two: none."""
    # every device of the occurrence installs in this pass (the example allows 10% at once)
    example_repo.write(
        "policies/schedules/windows-weekly.yaml",
        (example_repo.path / "policies/schedules/windows-weekly.yaml")
        .read_text()
        .replace("maxConcurrent: 10%", "maxConcurrent: 100%"),
    )
    example_repo.commit("windows-weekly: all devices at once")
    seed_catalogue(store)
    enrol_fleet(store, FLEET)

    first = reconciler(example_repo, store, tmp_path, IN_WINDOW).reconcile()
    assert FLEET == first.counts["jobsIssued"]
    with store.read() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(schema.alerts)).scalar_one()
    assert stored == first.counts["alertsRaised"]  # the insert counts what it wrote
    search = alert_rows(store, "Search")
    occurrence = "2026-11-29T01:00Z"
    assert 1 == len(search)
    (alert,) = search
    sample = [f"web-{n:04d}" for n in range(10)]
    assert {
        "tenant": TENANT,
        "device_id": None,
        "severity": "info",
        "message": (
            f"1 missing patch(es) found and approved on 1000 devices in PatchWindow "
            f"acme/windows-weekly occurrence {occurrence}: {', '.join(sample)} and 990 more"
        ),
        "details": {
            "window": "acme/windows-weekly",
            "occurrence": occurrence,
            "devices": 1000,
            "patches": 1,
            "installs": 1000,
            "sample": sample,
        },
    } == {k: alert[k] for k in ("tenant", "device_id", "severity", "message", "details")}
    assert alert["dedupe_key"].startswith(f"Search:{TENANT}:acme/windows-weekly@{occurrence}:")

    second = reconciler(example_repo, store, tmp_path, IN_WINDOW).reconcile()
    assert (0, 0) == (second.counts["jobsIssued"], second.counts["alertsRaised"])
    assert [alert["id"]] == [row["id"] for row in alert_rows(store, "Search")]

    # the grouped alert routes like the per-device ones did: by tenant, type and severity
    def subscriber(tenant: str) -> Notification:
        return Notification.model_validate(
            {
                "apiVersion": "patchctl/v1",
                "kind": "Notification",
                "metadata": {"name": "searches", "tenant": tenant},
                "spec": {
                    "events": ["Search"],
                    "minSeverity": "info",
                    "channel": {"slack": {"urlEnv": "SLACK_URL"}},
                },
            }
        )

    event = events.from_alert(alert)
    assert event is not None
    deliveries = route([event], [subscriber("acme"), subscriber("acme/logistics")])
    assert [("acme/searches", alert["dedupe_key"])] == [
        (name, d.event.key) for d in deliveries for name in d.notifications
    ]
