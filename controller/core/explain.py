"""Why each patch of a device is (or is not) required, approved and installable, and when it will
be installed. Purely computational: the same decisions the planner takes, with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.core import targets, windows
from controller.core.decisions import Applicable, Decision, decide, object_ref
from controller.core.desired import DesiredState
from controller.core.observed import DeviceView, ObservedState
from controller.core.plan import PolicySets, window_key


@dataclass(frozen=True, slots=True)
class PatchExplanation:
    patch_id: str
    status: str  # missing | installed
    decision: Decision
    verdict: str  # one sentence: what happens to this patch and why


@dataclass(frozen=True, slots=True)
class DeviceExplanation:
    device: DeviceView
    online: bool
    scanned_at: datetime | None
    policies: tuple[str, ...]  # object refs of everything that targets the device
    next_window: str | None
    patches: tuple[PatchExplanation, ...]


def explain(
    desired: DesiredState, observed: ObservedState, device: DeviceView, *, now: datetime
) -> DeviceExplanation:
    """Explain every scanned patch of `device` under `desired` at `now`."""
    device = targets.effective_device(device, desired)
    applicable = PolicySets(desired, observed, today=now.date()).applicable(device)
    scan = observed.scans.get(device.id)
    states = {window_key(w): windows.evaluate(w.spec, now=now) for w in applicable.windows}
    when = _when(applicable, states, device, now=now)
    patches = [
        _explain_patch(
            patch_id, status, decide(applicable, observed.patch(patch_id), today=now.date()), when
        )
        for status, ids in (
            ("missing", scan.missing if scan else ()),
            ("installed", scan.installed if scan else ()),
        )
        for patch_id in ids
    ]
    return DeviceExplanation(
        device=device,
        online=device.is_online(now=now),
        scanned_at=scan.scanned_at if scan else None,
        policies=tuple(
            object_ref(o)
            for o in (
                *applicable.baselines,
                *applicable.whitelists,
                *applicable.approvals,
                *applicable.windows,
                *applicable.scan_schedules,
            )
        ),
        next_window=when,
        patches=tuple(patches),
    )


def _when(
    applicable: Applicable,
    states: dict[str, windows.WindowState],
    device: DeviceView,
    *,
    now: datetime,
) -> str | None:
    if device.is_gateway:
        return None
    for window in applicable.windows:
        current = states[window_key(window)].current
        if current is not None and current.accepts_new_installs(now):
            until = f"{current.cutoff_at:%Y-%m-%d %H:%M}Z"
            return f"now, in PatchWindow {window_key(window)} (installs start until {until})"
    upcoming = [
        (state.upcoming.start, key) for key, state in states.items() if state.upcoming is not None
    ]
    if not upcoming:
        return None
    start, key = min(upcoming)
    return f"in PatchWindow {key} at {start:%Y-%m-%d %H:%M}Z"


def _explain_patch(
    patch_id: str, status: str, decision: Decision, when: str | None
) -> PatchExplanation:
    return PatchExplanation(patch_id, status, decision, _verdict(status, decision, when))


def _verdict(status: str, decision: Decision, when: str | None) -> str:  # noqa: PLR0911 - one sentence per case
    required = (
        f"required by {', '.join(decision.required_by)}" if decision.required else "not required"
    )
    if status == "installed":
        if decision.rejected:
            return f"installed but rejected by {', '.join(decision.excluded_by)}"
        return f"installed; {required}"
    if decision.rejected:
        return f"never installed: excluded by {', '.join(decision.excluded_by)}"
    if decision.superseded:
        return "not applicable: superseded by a newer patch"
    if decision.wrong_os:
        return "not applicable: the patch is for another operating system"
    if not decision.approved:
        return f"{required}; waiting for approval (no Approval or Whitelist id covers it)"
    approved = f"approved by {', '.join(decision.approved_by)}"
    if when is None:
        return f"{required}; {approved}; no patch window targets this device"
    return f"{required}; {approved}; will be installed {when}"
