"""The observed state's values: job states, the online rule, scan freshness, catalogue lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.observed import (
    DeviceView,
    JobState,
    ObservedState,
    ScanView,
    is_online,
    online_since,
)
from controller.core.patches import PatchRecord
from controller.kinds.common import OsFamily, Severity

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("state", "in_flight", "started"),
    [
        (JobState.PENDING, True, False),
        (JobState.DELIVERED, True, False),
        (JobState.ACKED, True, True),
        (JobState.DOWNLOADING, True, True),
        (JobState.INSTALLING, True, True),
        (JobState.REBOOTING, True, True),
        (JobState.SUCCEEDED, False, True),
        (JobState.FAILED, False, True),
        (JobState.EXPIRED, False, False),
        (JobState.CANCELLED, False, False),
    ],
    ids=str,
)
def test_job_states_say_whether_in_flight_and_started(
    state: JobState, in_flight: bool, started: bool
) -> None:
    """In flight until a final state; started (no longer cancellable) from the agent's ack."""
    assert (in_flight, started) == (state.in_flight, state.started)


def test_every_job_state_is_in_the_table() -> None:
    """The table above covers the whole enum, so a new state must be classified there."""
    assert 10 == len(JobState)


@pytest.mark.parametrize(
    ("last_seen", "expected"),
    [
        pytest.param(None, False, id="never-seen"),
        pytest.param(NOW - 30 * timedelta(seconds=1), True, id="30s-ago"),
        pytest.param(NOW - 2 * MINUTE, True, id="exactly-two-intervals"),
        pytest.param(NOW - 2 * MINUTE - timedelta(seconds=1), False, id="just-past-two"),
        pytest.param(NOW - timedelta(hours=2), False, id="two-hours-ago"),
    ],
)
def test_online_means_seen_within_two_poll_intervals(
    last_seen: datetime | None, expected: bool
) -> None:
    """DESIGN.md 3.8: a device polling every minute is online when seen in the last two."""
    device = DeviceView(
        id="d", tenant="acme", name="web-01", os=OsFamily.LINUX, last_seen=last_seen
    )
    assert (expected, expected) == (
        is_online(last_seen, MINUTE, now=NOW),
        device.is_online(now=NOW),
    )


def test_online_since_is_the_oldest_check_in_that_counts() -> None:
    """The query bound of the online rule is two poll intervals before now."""
    assert NOW - timedelta(minutes=10) == online_since(timedelta(minutes=5), now=NOW)


def test_a_gateway_is_known_by_its_role() -> None:
    """Only the role `gateway` makes a device a gateway."""
    gateway = DeviceView(id="g", tenant="acme", name="gw", os=None, role="gateway")
    server = DeviceView(id="s", tenant="acme", name="db", os=None)
    assert (True, False) == (gateway.is_gateway, server.is_gateway)


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [
        pytest.param(None, NOW - MINUTE, id="as-scanned"),
        pytest.param(NOW, NOW, id="received"),
    ],
)
def test_scan_freshness_is_the_server_receive_time(
    received_at: datetime | None, expected: datetime
) -> None:
    """A scan is as fresh as when the server received it; without that, its own stamp."""
    assert expected == ScanView(scanned_at=NOW - MINUTE, received_at=received_at).fresh_at


def test_patch_lookup_gives_a_bare_record_for_unknown_ids() -> None:
    """A catalogue record is returned as stored; an id only an agent reported gets a bare one."""
    known = PatchRecord(id="KB1", severity=Severity.CRITICAL)
    observed = ObservedState(catalogue={"KB1": known})
    assert (known, PatchRecord(id="KB2")) == (observed.patch("KB1"), observed.patch("KB2"))
