"""Notification channels in `patchctl status` and `GET /api/v1/status`: each channel's
delivery state as the notifier stored it; a tenant's token sees its own Notifications'
channels only (docs/notifications.md "State in status")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.notify import channel_id
from controller.notify.delivery import ChannelStatus
from controller.notify.state import StatusWriter
from controller.runtime import status
from controller.store import Store
from controller.testing import run_cli
from controller.testing.fleets import desired

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
NOTIFICATIONS = """\
apiVersion: patchctl/v1
kind: Notification
metadata: {name: retail-ops, tenant: acme/retail}
spec: {events: [InstallFailed], channel: {webhook: {url: "https://hooks.retail.example/x"}}}
---
apiVersion: patchctl/v1
kind: Notification
metadata: {name: fleet-ops}
spec: {events: [InstallFailed], channel: {webhook: {url: "https://hooks.msp.example/y"}}}
"""


def failing(channel: str) -> ChannelStatus:
    return ChannelStatus(
        channel_id=channel,
        kind="webhook",
        delivered=41,
        messages=38,
        failures=2,
        dropped=1,
        queued=3,
        last_success=NOW,
        last_error="hooks.example: HTTP 503 Service Unavailable (attempt 2 of 5)",
        last_error_at=NOW,
        next_attempt=NOW,
    )


def channels_of(policy: str) -> dict[str, str]:
    state = desired(policy)
    return {n.name: channel_id(n.spec.channel) for n in state.notifications}


def test_a_tenants_scope_reads_its_own_notifications_channels() -> None:
    """A client's or its partner's scope: the client's channel; another client's: none; the
    channel of a Notification of every tenant is the operator's (no tenant scope reads it)."""
    state, ids = desired(NOTIFICATIONS), channels_of(NOTIFICATIONS)
    assert {ids["retail-ops"]} == status.scope_channels(state, "acme/retail")
    assert {ids["retail-ops"]} == status.scope_channels(state, "acme")
    assert set() == status.scope_channels(state, "acme/logistics")
    assert set() == status.scope_channels(None, "acme")


async def test_the_status_shows_each_channels_state(store: Store, api) -> None:
    """`patchctl status` on the controller host lists every channel with its failures; the
    read API shows a token none of them while the service holds no policy to scope them by."""
    ids = channels_of(NOTIFICATIONS)
    for channel in ids.values():
        StatusWriter(store, clock=lambda: NOW)(failing(channel))
    code, out, err = run_cli("status", "--db", store.url)
    answer = await api.client.get(
        "/api/v1/status", headers={"Authorization": f"Bearer {api.token('acme/retail')}"}
    )
    assert 0 == code, err
    assert "notification channels:" in out
    line = next(line for line in out.splitlines() if ids["retail-ops"] in line)
    assert (
        "delivered 41, queued 3, dropped 1; failing (2 attempt(s)): hooks.example: HTTP 503" in line
    )
    assert ids["fleet-ops"] in out
    assert (200, []) == (answer.status_code, answer.json()["notifications"])
