"""Rows a test needs in a real store, written through the store's own functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.store import devices

if TYPE_CHECKING:
    from datetime import datetime

    from controller.store import Connection


def enrol_linux(
    conn: Connection, hostname: str, *, now: datetime, tenant: str = "acme/retail"
) -> str:
    """Enrol an Ubuntu 24.04 server named `hostname` in `tenant` (polling every minute), as
    `POST /api/v1/enroll` would; its device id."""
    enrolled = devices.enrol(
        conn,
        devices.Enrolment(
            tenant=tenant,
            hostname=hostname,
            os_family="linux",
            os_name="Ubuntu",
            os_version="24.04",
            role="server",
            agent_version="1",
        ),
        poll_interval=60,
        now=now,
    )
    assert isinstance(enrolled, devices.Enrolled), enrolled
    return enrolled.device_id
