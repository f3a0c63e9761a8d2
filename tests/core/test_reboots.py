"""Which installed patches wait for the reboot the OS signals (issue 13.6, DESIGN.md 3.6, 3.9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_kernels import CATALOGUE, EL8, NEW, OLD, deb, rpm

from controller.core import kernels, reboots
from controller.core.applicability import Inventory, detect_missing, detect_pending_reboot
from controller.core.versions import Scheme
from controller.kinds.common import OsFamily

SCANNED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("last_boot_at", "uptime", "expected"),
    [
        pytest.param(SCANNED - 48 * HOUR, 60, SCANNED - 48 * HOUR, id="last-boot-at-wins"),
        pytest.param(None, 3600, SCANNED - HOUR, id="from-uptime"),
        pytest.param(None, None, None, id="unknown"),
        pytest.param(None, -5, None, id="negative-uptime-ignored"),
    ],
)
def test_boot_time(
    last_boot_at: datetime | None, uptime: int | None, expected: datetime | None
) -> None:
    """The boot time is the facts' lastBootAt, else the scan time minus uptime, else unknown."""
    assert expected == reboots.boot_time(
        last_boot_at=last_boot_at, uptime_seconds=uptime, scanned_at=SCANNED
    )


@pytest.mark.parametrize(
    ("installed", "booted_at", "expected"),
    [
        pytest.param([("KB1", SCANNED - HOUR / 2)], SCANNED - 48 * HOUR, ("KB1",), id="after-boot"),
        pytest.param([("KB1", SCANNED - 49 * HOUR)], SCANNED - 48 * HOUR, (), id="before-boot"),
        pytest.param([("KB1", None)], SCANNED - 48 * HOUR, (), id="undated-never"),
        pytest.param(
            [("KB1", SCANNED - HOUR / 2), ("KB2", SCANNED - 25 * HOUR)],
            None,
            ("KB1",),
            id="no-boot-time-last-day-only",
        ),
        pytest.param(
            [("KB1", SCANNED + 300 * 24 * HOUR)],
            SCANNED + 299 * 24 * HOUR,
            ("KB1",),
            id="agent-clock-off-both-sides-agree",
        ),
    ],
)
def test_installed_since_boot(
    installed: list[tuple[str, datetime | None]],
    booted_at: datetime | None,
    expected: tuple[str, ...],
) -> None:
    """A patch dated after the last boot (or, with no boot time, within a day) waits for the reboot."""
    assert expected == reboots.installed_since_boot(
        installed, booted_at=booted_at, scanned_at=SCANNED
    )


def test_as_running_drops_newer_kernels_of_the_running_family() -> None:
    """Judged as booted, only the running kernel of its family counts; other packages stay."""
    packages = (rpm("kernel-core", OLD), rpm("kernel-core", NEW), rpm("bash", "4.4.20-5.el8"))
    found = kernels.as_running(Scheme.RPM, f"{OLD}.x86_64", packages)
    assert [("kernel-core", OLD), ("bash", "4.4.20-5.el8")] == [
        (p.name, f"{p.version}-{p.release}") for p in found
    ]


@pytest.mark.parametrize(
    ("release", "kernel", "packages", "expected"),
    [
        pytest.param(
            EL8,
            f"{OLD}.x86_64",
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            ("ALSA-2099:9001",),
            id="el8-fixed-kernel-installed-old-one-running",
        ),
        pytest.param(
            EL8,
            f"{NEW}.x86_64",
            (rpm("kernel-core", OLD), rpm("kernel-core", NEW)),
            (),
            id="el8-fixed-kernel-running",
        ),
        pytest.param(
            EL8,
            f"{OLD}.x86_64",
            (rpm("kernel-core", OLD),),
            (),
            id="el8-only-the-old-kernel-missing-not-pending",
        ),
        pytest.param(
            "debian:12",
            "6.1.0-25-amd64",
            (
                deb("linux-image-6.1.0-25-amd64", "6.1.106-3", "linux"),
                deb("linux-image-6.1.0-26-amd64", "6.1.112-1", "linux"),
            ),
            ("DSA-9301-1",),
            id="debian-newer-abi-installed-old-running",
        ),
    ],
)
def test_detect_pending_reboot(
    release: str, kernel: str, packages: tuple, expected: tuple[str, ...]
) -> None:
    """An advisory the newest installed kernel fixes and the running one does not waits for the reboot."""
    inventory = Inventory(os=OsFamily.LINUX, release=release, packages=packages, kernel=kernel)
    missing = [f.patch_id for f in detect_missing(CATALOGUE, inventory)]
    assert expected == detect_pending_reboot(CATALOGUE, inventory, missing)
