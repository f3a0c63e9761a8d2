"""Grouped info alerts and set-based alert writes (issue 14.3), on SQLite and PostgreSQL.

One approval reaching 1,000 devices in one PatchWindow occurrence raises one `Search` alert for
the tenant (counts and a bounded sample of names), not 1,000; a second pass raises nothing; the
grouped alert still reaches a Notification subscribed to `Search` in its tenant."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_reconcile import IN_WINDOW, reconciler, seed_catalogue

from controller.kinds.notifications import Notification
from controller.notify import events, route
from controller.runtime import apply
from controller.store import Store, changes, devices, reports, schema
from controller.store import alerts as alert_store
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


def test_a_pass_sends_only_the_alerts_the_last_applied_pass_did_not_hold(
    example_repo: PolicyRepo, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan holds every alert of the fleet and its ledger each pass; the store already holds
    those of the last plan this process applied, so only the others are sent (sending them all
    made a quiet pass cost the whole ledger). After a pass whose apply failed, every alert is
    sent again: none of that pass's may be stored. Each key is stored once throughout."""
    seed_catalogue(store)
    enrol_fleet(store, 50)
    sent: list[int] = []
    add_alerts = alert_store.add_alerts

    def counting(conn: Any, alerts: Any, *, now: Any) -> int:
        sent.append(len(alerts))
        return add_alerts(conn, alerts, now=now)

    def keys(outcome: Any) -> set[str]:
        return {alert.key for alert in outcome.plan.alerts}

    monkeypatch.setattr(apply.alert_store, "add_alerts", counting)
    service = reconciler(example_repo, store, tmp_path, IN_WINDOW)
    clock = service.clock_cell  # type: ignore[attr-defined]
    first = service.reconcile()
    assert 5 == first.counts["jobsIssued"]  # the example's maxConcurrent: 10% of 50
    assert len(keys(first)) == sent[-1] == first.counts["alertsRaised"] > 0

    clock[0] += timedelta(minutes=10)
    with store.write() as conn:  # the agents report their installs done
        done = (
            conn.execute(
                schema.jobs.update()
                .where(schema.jobs.c.kind == "install")
                .values(
                    state="succeeded",
                    results={"KB5044284": {"result": "installed"}},
                    updated_at=clock[0],
                    finished_at=clock[0],
                )
                .returning(schema.jobs.c.device_id)
            )
            .scalars()
            .all()
        )
        changes.record_devices(conn, done, now=clock[0])
    second = service.reconcile()
    reported = {key for key in keys(second) if key.startswith("InstallComplete:")}
    assert 5 == len(reported)
    assert len(keys(second) - keys(first)) == sent[-1] == second.counts["alertsRaised"]

    clock[0] += timedelta(seconds=30)
    quiet = service.reconcile()
    assert reported <= keys(quiet)  # the plan holds them still: the store has them
    assert (0, 0) == (sent[-1], quiet.counts["alertsRaised"])

    def failing(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the store went away")

    clock[0] += timedelta(seconds=30)
    with monkeypatch.context() as patched:
        patched.setattr(apply, "_resolve_cleared", failing)
        with pytest.raises(RuntimeError):
            service.reconcile()
    clock[0] += timedelta(seconds=30)
    after = service.reconcile()
    assert len(keys(after)) == sent[-1] > 0  # all of them: the failed pass wrote nothing
    with store.read() as conn:
        stored = conn.execute(sa.select(schema.alerts.c.dedupe_key)).scalars().all()
    assert len(stored) == len(set(stored)) >= len(keys(after))

    # a store restored behind the service's back: alerts gone, a job as it was; the resync
    # finds the drift and raises every alert its plan holds again
    with store.write() as conn:
        conn.execute(schema.alerts.delete())
        conn.execute(
            schema.jobs.update().where(schema.jobs.c.device_id == done[0]).values(state="pending")
        )
    service.resync = timedelta(0)
    clock[0] += timedelta(seconds=30)
    restored = service.reconcile()
    assert restored.counts["drift"] > 0
    assert len(keys(restored)) == sent[-1] == restored.counts["alertsRaised"] > 0
