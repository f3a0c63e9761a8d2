"""The simulated fleet's pure parts: who is in it, what they can miss, and the clocks."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from controller.sim import BUILTIN, Behaviour, ManualClock, ScaledClock, plan_fleet
from controller.sim.patches import SimPatch, applicable


def test_same_seed_same_fleet() -> None:
    """A seed fixes the fleet; another seed gives another one."""
    assert plan_fleet(40, seed=7) == plan_fleet(40, seed=7)
    assert plan_fleet(40, seed=7) != plan_fleet(40, seed=8)


def test_fleet_mixes_os_roles_and_tenants() -> None:
    """A fleet has Windows and Linux, servers and workstations, a few gateways, every tenant."""
    fleet = plan_fleet(300, seed=1)
    roles = Counter((d.os_family, d.role) for d in fleet)
    assert {"acme", "acme/retail", "acme/logistics"} == {d.tenant for d in fleet}
    assert 300 == len({d.hostname for d in fleet})
    assert roles[("windows", "server")] > 0
    assert roles[("windows", "workstation")] > 0
    assert roles[("linux", "server")] > 0
    assert 0 < roles[("linux", "gateway")] < 30
    assert 0 == roles[("windows", "gateway")]


@pytest.mark.parametrize(
    ("patch_family", "versions", "os_family", "os_name", "os_version", "expected"),
    [
        (
            "windows",
            ("Windows Server 2022",),
            "windows",
            "Windows Server 2022 Datacenter",
            "10.0.20348",
            True,
        ),
        (
            "windows",
            ("Windows Server 2022",),
            "windows",
            "Windows Server 2019 Standard",
            "10.0.17763",
            False,
        ),
        ("windows", (), "windows", "Windows 11 Enterprise", "10.0.22631", True),
        ("linux", ("Debian 12",), "linux", "Debian GNU/Linux", "12", True),
        ("linux", ("Debian 11",), "linux", "Debian GNU/Linux", "12", False),
        ("linux", ("Ubuntu 22.04", "Ubuntu 24.04"), "linux", "Ubuntu", "24.04", True),
        (
            "linux",
            ("Red Hat Enterprise Linux 9",),
            "linux",
            "Red Hat Enterprise Linux",
            "9.4",
            True,
        ),
        ("linux", ("Red Hat Enterprise Linux 9",), "linux", "AlmaLinux", "9.4", False),
        ("linux", ("AlmaLinux",), "linux", "AlmaLinux", "9.4", True),
        ("linux", (), "windows", "Windows 11 Enterprise", "10.0.22631", False),
    ],
    ids=[
        "server-2022",
        "other-server",
        "any-windows",
        "debian-12",
        "debian-11",
        "ubuntu-either",
        "rhel-9",
        "alma-is-not-rhel",
        "alma-family",
        "wrong-family",
    ],
)
def test_applicable_patches_match_the_os(
    patch_family, versions, os_family, os_name, os_version, expected
) -> None:
    """A patch applies to devices of its family whose product or release it names."""
    patch = SimPatch(
        "P-1", patch_family, versions, "t", "security", "critical", 1, reboot_required=False
    )
    found = applicable([patch], os_family=os_family, os_name=os_name, os_version=os_version)
    assert expected == bool(found)


def test_builtin_list_covers_both_families_and_the_example_ids() -> None:
    """The built-in list has Windows and Linux patches, the ones the example policies name."""
    ids = {p.id for p in BUILTIN}
    assert {
        "KB5044284",
        "KB5044033",
        "KB5011048",
        "KB5043050",
        "USN-7123-1",
        "USN-7100-1",
        "DSA-5800-1",
        "RHSA-2026:1234",
    } <= ids
    assert {"windows", "linux"} == {p.os_family for p in BUILTIN}


def test_behaviour_rejects_impossible_rates() -> None:
    """Rates outside 0..1 are refused at construction."""
    with pytest.raises(ValueError, match="failure_rate"):
        Behaviour(failure_rate=1.5)


def test_manual_clock_wakes_sleepers_in_order() -> None:
    """A manual clock wakes sleepers when advanced past their deadline, earliest first."""
    clock = ManualClock(datetime(2026, 11, 20, tzinfo=UTC))
    woke: list[int] = []

    async def sleeper(seconds: int) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    async def scenario() -> None:
        tasks = [asyncio.create_task(sleeper(s)) for s in (30, 10, 90)]
        await asyncio.sleep(0)
        await clock.advance(60)
        assert [10, 30] == woke
        await clock.advance(60)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert [10, 30, 90] == woke
    assert datetime(2026, 11, 20, 0, 2, tzinfo=UTC) == clock.now()


def test_scaled_clock_runs_faster() -> None:
    """A scaled clock's sleep takes `speed` times less wall time."""
    clock = ScaledClock(speed=3600, start=datetime(2026, 11, 20, tzinfo=UTC))
    before = clock.now()
    asyncio.run(clock.sleep(36))  # ten wall milliseconds
    assert (clock.now() - before).total_seconds() >= 36
