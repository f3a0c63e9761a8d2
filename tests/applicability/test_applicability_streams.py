"""Module streams through the real HTTP app and store: the stream a host reports decides (13.2)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core.patches import FixedPackage, PatchRecord
from controller.kinds.common import OsFamily
from controller.store import catalogue, devices

pytestmark = pytest.mark.anyio

ALMA8 = {"family": "linux", "name": "AlmaLinux", "version": "8.10"}
PHP74 = "0:7.4.33-2.module_el8.10.0+4243+1ccf9ea1"
PHP82 = "0:8.2.25-1.module_el8.10.0+4250+99ee88dd"
STREAMS = (
    PatchRecord(
        id="ALSA-2099:0074",
        os=OsFamily.LINUX,
        packages=(FixedPackage("php", PHP74, "almalinux:8", "x86_64", module="php:7.4"),),
    ),
    PatchRecord(
        id="ALSA-2099:0082",
        os=OsFamily.LINUX,
        packages=(FixedPackage("php", PHP82, "almalinux:8", "x86_64", module="php:8.2"),),
    ),
)
INSTALLED = {
    "name": "php",
    "epoch": "0",
    "version": "7.4.33",
    "release": "1.module_el8.10.0+3800+11aa22bb",
    "arch": "x86_64",
}


def feed_ids(api: Any, device_id: str) -> list[str]:
    with api.store.read() as conn:
        entries = devices.device_patches(conn, device_id)
    return sorted(e["id"] for e in entries if e["source"] == "feed")


@pytest.fixture
def imported(store: Any) -> None:
    catalogue.upsert_records(store, STREAMS)


@pytest.mark.usefixtures("imported")
async def test_reported_stream_decides_which_advisory_judges_the_host(api: Any) -> None:
    """A php:7.4 host misses the php:7.4 advisory only; without streams, the marker judges both."""
    on_stream, auth = await api.enroll("php74.example.org", ALMA8)
    silent, silent_auth = await api.enroll("php-old-agent", ALMA8)
    inventory = {"packages": [INSTALLED], "moduleStreams": ["php:7.4"]}
    await api.report(on_stream, auth, {"inventory": inventory})
    await api.report(silent, silent_auth, {"inventory": {"packages": [INSTALLED]}})

    assert (["ALSA-2099:0074"], ["ALSA-2099:0074", "ALSA-2099:0082"]) == (
        feed_ids(api, on_stream),
        feed_ids(api, silent),
    )


@pytest.mark.usefixtures("imported")
async def test_a_stream_switch_alone_reevaluates_the_host(api: Any) -> None:
    """Reporting another stream with the same packages changes the findings."""
    device_id, auth = await api.enroll("php-switch", ALMA8)
    inventory = {"packages": [INSTALLED], "moduleStreams": ["php:7.4"]}
    await api.report(device_id, auth, {"inventory": inventory})
    before = feed_ids(api, device_id)
    # `dnf module switch-to php:8.2` before the packages are upgraded
    inventory = {"packages": [INSTALLED], "moduleStreams": ["php:8.2"]}
    await api.report(device_id, auth, {"inventory": inventory})

    assert (["ALSA-2099:0074"], ["ALSA-2099:0082"]) == (before, feed_ids(api, device_id))


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        pytest.param(
            ["php"],
            "'php' is not a module stream: `name:stream`, such as `php:8.2`",
            id="no-stream",
        ),
        pytest.param(["php:7.4", "php:8.2"], "module 'php' has two enabled streams", id="two"),
    ],
)
async def test_bad_streams_are_refused_naming_the_field(
    api: Any, streams: list[str], message: str
) -> None:
    """A malformed stream list is a 422 naming `inventory.moduleStreams`, and stores nothing."""
    device_id, auth = await api.enroll("php-bad", ALMA8)
    answer = await api.client.post(
        f"/api/v1/devices/{device_id}/report",
        json={"inventory": {"packages": [INSTALLED], "moduleStreams": streams}},
        headers=auth,
    )
    assert 422 == answer.status_code
    assert message in answer.text
    assert "moduleStreams" in answer.text
    with api.store.read() as conn:
        assert devices.device_inventory(conn, device_id) is None
