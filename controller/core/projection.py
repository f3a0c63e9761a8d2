"""What merging a change would do: two plans over the same fleet, compared.

Purely computational: the base and head policies, the observed fleet and `now` go in; the object
changes, the devices whose installable patches change (with the window they will be patched in
next), the compliance projected after those installs, and warnings come out. It answers the pull
request's question "what happens if I merge this?".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from controller.core import changes, review
from controller.core.compliance import ComplianceState
from controller.core.desired import DesiredState
from controller.core.incremental import Changes, IncrementalPlanner
from controller.core.observed import ObservedState
from controller.core.plan import Plan


@dataclass(frozen=True, slots=True)
class DeviceDelta:
    """A device whose installable patches differ between base and head."""

    device_id: str
    tenant: str
    name: str
    granted: tuple[str, ...]  # installable at head, not at base
    revoked: tuple[str, ...]  # installable at base, not at head
    next_window: str | None
    next_window_start: datetime | None


@dataclass(frozen=True)
class Projection:
    base_revision: str | None
    head_revision: str | None
    changes: tuple[changes.ObjectChange, ...]
    devices: tuple[DeviceDelta, ...]
    compliance_before: dict[str, dict[str, int]]  # baseline -> state -> devices, after next window
    compliance_after: dict[str, dict[str, int]]
    pending_before: int
    pending_after: int
    warnings: tuple[str, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


def project(
    base: DesiredState, head: DesiredState, observed: ObservedState, *, now: datetime
) -> Projection:
    """Compare the plans of `base` and `head` over the same fleet at `now`.

    The head's plan is the base's with the devices re-planned whose policy set the change
    touches (`IncrementalPlanner`): a pull request approving a patch for a tenth of the fleet
    plans that tenth twice, not the whole fleet. What a projection reads of it (installable
    patches, next windows, compliance, pending approvals) is `plan(head, ...)`'s; which device
    a rollout-limited window's install goes to may differ (the base's installs are not in the
    ledger, as they would be once applied), and the projection reads none of that."""
    planner = IncrementalPlanner()
    before = planner.plan(base, observed, now=now)
    after = planner.plan(head, observed, now=now, changes=Changes())
    names = {d.id: d for d in observed.devices}
    head_summaries = {s.device_id: s for s in after.devices}
    base_installable = {s.device_id: set(s.installable) for s in before.devices}
    deltas = []
    for summary in after.devices:
        was, now_set = base_installable.get(summary.device_id, set()), set(summary.installable)
        if was == now_set:
            continue
        device = names[summary.device_id]
        deltas.append(
            DeviceDelta(
                device_id=device.id,
                tenant=device.tenant,
                name=device.name,
                granted=tuple(sorted(now_set - was)),
                revoked=tuple(sorted(was - now_set)),
                next_window=head_summaries[device.id].next_window,
                next_window_start=head_summaries[device.id].next_window_start,
            )
        )
    object_changes = changes.diff_states(base, head)
    return Projection(
        base_revision=base.revision,
        head_revision=head.revision,
        changes=object_changes,
        devices=tuple(sorted(deltas, key=lambda d: (d.tenant, d.name))),
        compliance_before=projected_compliance(before),
        compliance_after=projected_compliance(after),
        pending_before=before.pending_approvals,
        pending_after=after.pending_approvals,
        warnings=tuple(_warnings(object_changes, head, observed)),
    )


def projected_compliance(the_plan: Plan) -> dict[str, dict[str, int]]:
    """Compliance per baseline if every installable patch were installed in the next window."""
    installable = {s.device_id: set(s.installable) for s in the_plan.devices}
    counts: dict[str, Counter[str]] = {}
    for record in the_plan.compliance:
        state = record.state
        if state is ComplianceState.NON_COMPLIANT:
            open_findings = {p for p, _ in record.findings} - installable.get(
                record.device_id, set()
            )
            if not open_findings and not record.pending_reboot and not record.rejected:
                state = ComplianceState.COMPLIANT
        counts.setdefault(record.baseline, Counter())[state.value] += 1
    return {baseline: dict(sorted(c.items())) for baseline, c in sorted(counts.items())}


def _warnings(
    object_changes: tuple[changes.ObjectChange, ...], head: DesiredState, observed: ObservedState
) -> list[str]:
    """Approvals that grant patches no targeted device is missing approve nothing (yet)."""
    return [str(w) for w in review.approval_reach_warnings(object_changes, head, observed)]
