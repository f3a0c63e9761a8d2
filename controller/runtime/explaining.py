"""`patchctl explain` for one device out of the store: the store's observed state and a desired
state in, `core.explain`'s answer out (the same two steps the command takes), for the
dashboard's device page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.core.explain import DeviceExplanation, explain
from controller.runtime import observe

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

    from controller.core.desired import DesiredState


def explain_device(
    conn: Connection, desired: DesiredState, device_id: str, *, now: datetime
) -> DeviceExplanation | None:
    """Why each scanned patch of the device `device_id` is (or is not) installed under
    `desired` at `now`; None when the store has no such device. The caller checks the scope."""
    observed = observe.observe(conn, now=now)
    device = next((d for d in observed.devices if d.id == device_id), None)
    if device is None:
        return None
    return explain(desired, observed, device, now=now)
