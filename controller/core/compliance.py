"""Per-patch compliance states and device compliance per baseline (DESIGN.md 3.6).

Purely computational: the planner hands in the decisions, the latest scan and what the job ledger
says about failures and pending reboots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.core.decisions import Decision, object_ref
from controller.core.observed import ScanView
from controller.kinds import Baseline
from controller.kinds.baselines import ExcludeAction


class PatchState(StrEnum):
    INSTALLED = "installed"
    INSTALLED_PENDING_REBOOT = "installed-pending-reboot"
    MISSING = "missing"
    FAILED = "failed"
    INSTALLED_REJECTED = "installed-rejected"
    NOT_APPLICABLE = "not-applicable"


NON_COMPLIANT_STATES = frozenset(
    {
        PatchState.MISSING,
        PatchState.FAILED,
        PatchState.INSTALLED_PENDING_REBOOT,
        PatchState.INSTALLED_REJECTED,
    }
)


class ComplianceState(StrEnum):
    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class BaselineCompliance:
    """One device against one baseline: the verdict, counts per patch state, and the patches
    that keep it from being compliant."""

    device_id: str
    baseline: str  # object ref, "Baseline tenant/name"
    state: ComplianceState
    counts: tuple[tuple[PatchState, int], ...]
    findings: tuple[tuple[str, PatchState], ...]  # non-compliant patches, sorted by id
    scanned_at: datetime | None

    def count(self, state: PatchState) -> int:
        return dict(self.counts).get(state, 0)


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    """What the job ledger says about a device's patches."""

    failed: frozenset[str] = frozenset()  # last automatic attempt failed, not installed since
    pending_reboot: frozenset[str] = frozenset()  # installed by a job that asked for a reboot


def evaluate(
    baseline: Baseline,
    *,
    device_id: str,
    scan: ScanView | None,
    decisions: Mapping[str, Decision],
    history: DeviceHistory,
    now: datetime,
) -> BaselineCompliance:
    """The device's compliance with `baseline`; `decisions` covers every scanned patch."""
    if scan is None or now - scan.scanned_at > baseline.spec.stale_scan_after:
        scanned_at = scan.scanned_at if scan else None
        unknown = ComplianceState.UNKNOWN
        return BaselineCompliance(device_id, object_ref(baseline), unknown, (), (), scanned_at)
    ref = object_ref(baseline)
    states: dict[str, PatchState] = {}
    for patch_id in scan.missing:
        state = _missing_state(decisions[patch_id], ref, history)
        if state is not None:
            states[patch_id] = state
    for patch_id in scan.installed:
        state = _installed_state(
            decisions[patch_id], ref, baseline, history, reboot=scan.reboot_required
        )
        if state is not None:
            states[patch_id] = state
    counts: dict[PatchState, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    findings = tuple(sorted((p, s) for p, s in states.items() if s in NON_COMPLIANT_STATES))
    verdict = ComplianceState.NON_COMPLIANT if findings else ComplianceState.COMPLIANT
    return BaselineCompliance(
        device_id, ref, verdict, tuple(sorted(counts.items())), findings, scan.scanned_at
    )


def _missing_state(decision: Decision, ref: str, history: DeviceHistory) -> PatchState | None:
    if ref not in decision.required_by or decision.excluded_by:
        return None
    if decision.not_applicable:
        return PatchState.NOT_APPLICABLE
    return PatchState.FAILED if decision.patch_id in history.failed else PatchState.MISSING


def _installed_state(
    decision: Decision, ref: str, baseline: Baseline, history: DeviceHistory, *, reboot: bool
) -> PatchState | None:
    if ref in decision.excluded_by:
        blocked = baseline.spec.exclude_action is ExcludeAction.BLOCK
        return PatchState.INSTALLED_REJECTED if blocked else None
    if ref not in decision.required_by or decision.excluded_by:
        return None
    if reboot and decision.patch_id in history.pending_reboot:
        return PatchState.INSTALLED_PENDING_REBOOT
    return PatchState.INSTALLED
