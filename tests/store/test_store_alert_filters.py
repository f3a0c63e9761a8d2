"""`alerts.list_alerts` and `get_alert`: every filter alone and combined, tenant scoping and the
alert's state read from its columns, on each engine (issue 16, item 7).

The alerts (a1 oldest ... a7 newest; NOW is the report fleet's):

| alert | kind                 | severity | tenant         | device   | raised    | state        |
|-------|----------------------|----------|----------------|----------|-----------|--------------|
| a1    | InstallFailed        | critical | acme/retail    | web-01   | NOW-3d    | open         |
| a2    | RebootPending        | warning  | acme/logistics | win-01   | NOW-2d    | acknowledged |
| a3    | InstallFailed        | critical | acme/logistics | win-01   | NOW-1d    | resolved     |
| a4    | PolicyInvalid        | critical | (every tenant) |          | NOW-12h   | open         |
| a5    | FeedFailed           | warning  | acme           |          | NOW-6h    | open         |
| a6    | InstallFailed        | critical | other          | db-01    | NOW-1h    | open         |
| a7    | AgentOfflineInWindow | info     | acme/retail    | web-02   | NOW-30min | resolved     |
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from reports.reportfleet import NOW, build_fleet

from controller.kinds.notifications import NOTIFIABLE_EVENTS, AlertSeverity, EventType
from controller.runtime.feeds import FEED_FAILED
from controller.store import Store, alerts, schema
from controller.store.alerts import AlertFilter, AlertState

ALERTS = (  # message, kind, severity, tenant, device id, age, acknowledged, resolved
    ("a1", "InstallFailed", "critical", "acme/retail", "d-web-01", timedelta(days=3), False, False),
    ("a2", "RebootPending", "warning", "acme/logistics", "d-win-01", timedelta(days=2), True, False),
    ("a3", "InstallFailed", "critical", "acme/logistics", "d-win-01", timedelta(days=1), True, True),
    ("a4", "PolicyInvalid", "critical", None, None, timedelta(hours=12), False, False),
    ("a5", "FeedFailed", "warning", "acme", None, timedelta(hours=6), False, False),
    ("a6", "InstallFailed", "critical", "other", "d-db-01", timedelta(hours=1), False, False),
    ("a7", "AgentOfflineInWindow", "info", "acme/retail", "d-web-02", timedelta(minutes=30), False, True),
)  # fmt: skip


def add_alerts(store: Store) -> dict[str, int]:
    """Write the alerts of the module docstring; their ids by message."""
    ids = {}
    with store.write() as conn:
        for message, kind, severity, tenant, device, age, acked, resolved in ALERTS:
            raised = NOW - age
            alerts.add_alert(
                conn,
                alerts.NewAlert(
                    kind=kind, severity=severity, message=message, tenant=tenant, device_id=device
                ),
                now=raised,
            )
            a = schema.alerts.c
            alert_id = conn.execute(
                schema.alerts.select().with_only_columns(a.id).where(a.message == message)
            ).scalar_one()
            conn.execute(
                schema.alerts.update()
                .where(a.id == alert_id)
                .values(
                    acknowledged_at=raised + timedelta(minutes=5) if acked else None,
                    acknowledged_by="token:ops" if acked else None,
                    resolved_at=raised + timedelta(minutes=10) if resolved else None,
                )
            )
            ids[message] = alert_id
    return ids


@pytest.fixture
def alert_store(store: Store) -> Store:
    build_fleet(store)
    add_alerts(store)
    return store


def listed(store: Store, scope: str | None, **filters: Any) -> list[str]:
    with store.read() as conn:
        rows = alerts.list_alerts(conn, scope=scope, filters=AlertFilter(**filters))
    return [row["message"] for row in rows]


IF, RP = EventType.INSTALL_FAILED, EventType.REBOOT_PENDING
CRITICAL, WARNING, INFO = AlertSeverity.CRITICAL, AlertSeverity.WARNING, AlertSeverity.INFO
OPEN, ACKED, RESOLVED = AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.RESOLVED


@pytest.mark.parametrize(
    ("scope", "filters", "expected"),
    [
        ("acme", {}, ["a7", "a5", "a4", "a3", "a2", "a1"]),
        (None, {}, ["a7", "a6", "a5", "a4", "a3", "a2", "a1"]),
        ("acme/retail", {}, ["a7", "a4", "a1"]),
        ("other", {}, ["a6", "a4"]),
        ("acme", {"kinds": (IF,)}, ["a3", "a1"]),
        ("acme", {"kinds": (IF, RP)}, ["a3", "a2", "a1"]),
        ("acme", {"severities": (CRITICAL,)}, ["a4", "a3", "a1"]),
        ("acme", {"severities": (WARNING, INFO)}, ["a7", "a5", "a2"]),
        ("acme", {"states": (OPEN,)}, ["a5", "a4", "a1"]),
        ("acme", {"states": (ACKED,)}, ["a2"]),
        ("acme", {"states": (RESOLVED,)}, ["a7", "a3"]),
        ("acme", {"states": (OPEN, ACKED)}, ["a5", "a4", "a2", "a1"]),
        ("acme", {"unresolved_only": True}, ["a5", "a4", "a2", "a1"]),
        ("acme", {"device": "win-01"}, ["a3", "a2"]),
        ("acme", {"device": "WIN-01"}, ["a3", "a2"]),
        ("acme", {"device": "d-web-01"}, ["a1"]),
        ("acme", {"device": "db-01"}, []),
        (None, {"device": "db-01"}, ["a6"]),
        ("acme", {"since": NOW - timedelta(days=1)}, ["a7", "a5", "a4", "a3"]),
        ("acme", {"until": NOW - timedelta(days=1)}, ["a2", "a1"]),
        (
            "acme",
            {"since": NOW - timedelta(days=2), "until": NOW - timedelta(hours=12)},
            ["a3", "a2"],
        ),
        ("acme", {"kinds": (IF,), "states": (OPEN,)}, ["a1"]),
        (
            "acme",
            {"severities": (CRITICAL,), "states": (OPEN,), "since": NOW - timedelta(days=1)},
            ["a4"],
        ),
        ("acme/logistics", {"kinds": (IF,), "device": "win-01"}, ["a3"]),
        ("acme/retail", {"device": "win-01"}, []),
    ],
    ids=[
        "partner",
        "everything",
        "client",
        "other-partner",
        "kind",
        "kinds",
        "severity",
        "severities",
        "open",
        "acknowledged",
        "resolved",
        "open-or-acknowledged",
        "unresolved",
        "device-name",
        "device-name-any-case",
        "device-id",
        "foreign-device",
        "device-unscoped",
        "since-inclusive",
        "until-exclusive",
        "between",
        "kind-and-state",
        "severity-state-since",
        "client-kind-device",
        "sibling-device",
    ],
)
def test_each_filter_and_combinations(
    alert_store: Store, scope: str | None, filters: dict[str, Any], expected: list[str]
) -> None:
    """The filters keep exactly the alerts of the module docstring's table, newest first."""
    assert expected == listed(alert_store, scope, **filters)


def test_rows_carry_the_state_and_the_device_name(alert_store: Store) -> None:
    """Each row says its state and names its device when the device is in the scope."""
    with alert_store.read() as conn:
        rows = alerts.list_alerts(conn, scope="acme")
        unscoped = alerts.list_alerts(conn, scope=None, filters=AlertFilter(device="db-01"))
    shown = {r["message"]: (r["state"], r["device_name"]) for r in rows}
    assert {
        "a1": ("open", "web-01"),
        "a2": ("acknowledged", "win-01"),
        "a3": ("resolved", "win-01"),
        "a4": ("open", None),
        "a5": ("open", None),
        "a7": ("resolved", "web-02"),
    } == shown
    assert [("open", "db-01")] == [(r["state"], r["device_name"]) for r in unscoped]
    assert "token:ops" == next(r["acknowledged_by"] for r in rows if r["message"] == "a2")


@pytest.mark.parametrize(
    ("message", "scope", "found"),
    [
        ("a1", "acme/retail", True),
        ("a1", "acme", True),
        ("a1", "acme/logistics", False),
        ("a6", "acme", False),
        ("a4", "acme/retail", True),
        ("a5", "acme/retail", False),
        ("a6", None, True),
    ],
    ids=["own", "partner", "sibling", "other-partner", "global", "partner-row", "unscoped"],
)
def test_get_alert_is_scoped(store: Store, message: str, scope: str | None, found: bool) -> None:
    """One alert by id: found in its scope (and globals everywhere), None outside it."""
    build_fleet(store)
    ids = add_alerts(store)
    with store.read() as conn:
        row = alerts.get_alert(conn, ids[message], scope=scope)
    assert found == (row is not None)
    if row is not None:
        assert (ids[message], message) == (row["id"], row["message"])


def test_the_kinds_cover_every_alert_the_controller_raises() -> None:
    """Every notification event and the feed failure is a known alert kind (and no other)."""
    assert {e.value for e in NOTIFIABLE_EVENTS} | {FEED_FAILED} == {k.value for k in EventType}
