"""`patchctl explain` and `GET /api/v1/devices/{device}/explain`: one function, so that the
command on the database and the read API give the same answer for the same state.

The decisions are the pure core's (`controller.core.explain`); this module finds the device in
a tenant scope, observes the fleet from the store and shapes the answer as JSON (camelCase).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller import errors
from controller.core.explain import explain
from controller.runtime import observe, status
from controller.store import operations

if TYPE_CHECKING:
    from controller.core.desired import DesiredState
    from controller.core.explain import DeviceExplanation
    from controller.store import Connection


class DeviceNotFoundError(errors.NeedsHumanError, LookupError):
    """No device (or more than one) of that name or id in the scope; the message says which
    ones matched, and `ambiguous` tells the two cases apart (404 vs 409 on the API)."""

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def explain_device(
    conn: Connection, desired: DesiredState, ref: str, *, scope: str | None, now: datetime
) -> dict[str, Any]:
    """The explanation of device `ref` (name or id) in tenant `scope` (None: every tenant) under
    `desired` at `now`, as `explanation_json` shapes it. Raises DeviceNotFoundError."""
    try:  # the admin API's and `devices retire`'s resolver: the id first, then the name
        found = operations.find_device(conn, ref, scope=scope)
    except operations.NotFound as exc:
        raise DeviceNotFoundError(str(exc), ambiguous=False) from None
    except operations.Refused as exc:
        raise DeviceNotFoundError(f"{exc} (or narrow the tenant)", ambiguous=True) from None
    if found["retired_at"] is not None:  # not planned any more: nothing to explain
        raise DeviceNotFoundError(
            f"device {found['name']!r} ({found['tenant']}) is retired", ambiguous=False
        )
    explanation = explanation_of(conn, desired, found["id"], now=now)
    if explanation is None:  # pragma: no cover - found in this very transaction
        raise DeviceNotFoundError(f"device {ref!r} is gone", ambiguous=False)
    return explanation_json(explanation, desired.revision)


def explanation_of(
    conn: Connection, desired: DesiredState, device_id: str, *, now: datetime
) -> DeviceExplanation | None:
    """The explanation of the device with id `device_id` (the dashboard's device page, which
    has checked the scope); None when the store has no such device. The fleet's devices are
    read (agents' metadata fills the catalogue), the ledger of this device only, unless its
    plan reads rollout limits (`core.plan.plan_alone`): a month of a 100,000-device fleet's
    jobs is 400,000."""
    observed = observe.observe(conn, now=now, jobs_of=[device_id])
    view = next((d for d in observed.devices if d.id == device_id), None)
    if view is None:
        return None
    return explain(desired, observed, view, now=now, fleet=lambda: observe.observe(conn, now=now))


def explanation_json(result: DeviceExplanation, revision: str | None) -> dict[str, Any]:
    """The JSON form of an explanation: the device, the policy revision, online, last scan,
    the next install opportunity (window times on the window's own clock) or, when there is
    none, why (`unscheduled`: a gateway is never patched, no window targets it), the policies that
    target it, its unfinished jobs and, per patch, each decision with the objects behind it."""
    d = result.device
    return {
        "device": {
            "id": d.id,
            "tenant": d.tenant,
            "name": d.name,
            "os": d.os.value if d.os else None,
            "osName": d.os_name,
            "osVersion": d.os_version,
            "role": d.role,
        },
        "revision": revision,
        "online": result.online,
        "scannedAt": status.iso(result.scanned_at),
        "nextWindow": result.next_window,
        "unscheduled": result.unscheduled,
        "policies": list(result.policies),
        "jobs": list(result.jobs),
        "patches": [
            {
                "id": p.patch_id,
                "status": p.status,
                "state": p.state,
                "required": p.decision.required,
                "requiredBy": list(p.decision.required_by),
                "approved": p.decision.approved,
                "approvedBy": list(p.decision.approved_by),
                "rejectedBy": list(p.decision.excluded_by),
                "superseded": p.decision.superseded,
                "installable": p.decision.installable,
                "verdict": p.verdict,
            }
            for p in result.patches
        ],
    }
