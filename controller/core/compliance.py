"""Per-patch compliance states and device compliance per baseline (DESIGN.md 3.6).

Purely computational: the planner hands in the decisions, the latest scan and what the job ledger
says about failures and pending reboots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from controller.core.decisions import Decision, object_ref
from controller.core.observed import ScanView
from controller.core.records import quick_init
from controller.kinds import Baseline
from controller.kinds.baselines import ExcludeAction

K = TypeVar("K")
V = TypeVar("V")


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


@quick_init
@dataclass(frozen=True, slots=True)
class BaselineCompliance:
    """One device against one baseline: the verdict and the patches in each state.

    Patch ids are kept per state, in scan order, rather than as (id, state) pairs: a fleet has
    millions of them, and the same scan must give an equal record so that nothing is rewritten.
    """

    device_id: str
    baseline: str  # object ref, "Baseline tenant/name"
    state: ComplianceState
    scanned_at: datetime | None
    missing: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    pending_reboot: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    installed: int = 0
    not_applicable: int = 0

    @property
    def findings(self) -> tuple[tuple[str, PatchState], ...]:
        """The patches that keep the device from being compliant, with their states."""
        return (
            *((p, PatchState.MISSING) for p in self.missing),
            *((p, PatchState.FAILED) for p in self.failed),
            *((p, PatchState.INSTALLED_PENDING_REBOOT) for p in self.pending_reboot),
            *((p, PatchState.INSTALLED_REJECTED) for p in self.rejected),
        )

    def counts(self) -> dict[PatchState, int]:
        """How many required patches are in each state (states with none are left out)."""
        counts = {
            PatchState.INSTALLED: self.installed,
            PatchState.INSTALLED_PENDING_REBOOT: len(self.pending_reboot),
            PatchState.MISSING: len(self.missing),
            PatchState.FAILED: len(self.failed),
            PatchState.INSTALLED_REJECTED: len(self.rejected),
            PatchState.NOT_APPLICABLE: self.not_applicable,
        }
        return {state: n for state, n in counts.items() if n}


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
    return BaselineEvaluator(baseline, decisions).evaluate(
        device_id=device_id, scan=scan, history=history, now=now
    )


SCANS_REMEMBERED = 4096  # distinct scan contents a `BaselineEvaluator` keeps the fields of

# a record's fields but its device, baseline and scan time: state, missing, failed,
# pending_reboot, rejected, installed, not_applicable
_Fields = tuple[
    "ComplianceState",
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    int,
    int,
]


class BaselineEvaluator:
    """Evaluates one baseline for every device that shares a policy set.

    The state a patch takes when missing or installed depends only on its decision, so it is
    computed once per patch and reused for each device; only the device's job history (failed
    installs, pending reboots) is applied per device. Devices with no such history and the same
    scan content (most of a fleet: a few thousand distinct scans in a million devices) get the
    record's fields computed once (up to `SCANS_REMEMBERED` distinct scans).
    """

    def __init__(self, baseline: Baseline, decisions: Mapping[str, Decision]) -> None:
        self.baseline = baseline
        self.ref = object_ref(baseline)
        self.decisions = decisions
        self.block = baseline.spec.exclude_action is ExcludeAction.BLOCK
        self._if_missing = LazyMap(self._missing_state)
        self._if_installed = LazyMap(self._installed_state)
        # the record's fields by scan content, for devices with no failed install and no
        # patchctl install waiting for a reboot: most of a fleet shares a few scans
        self._by_scan: dict[tuple[object, ...], _Fields] = {}

    def evaluate(
        self,
        *,
        device_id: str,
        scan: ScanView | None,
        history: DeviceHistory,
        now: datetime,
        share: Callable[[list[str]], tuple[str, ...]] = tuple,
    ) -> BaselineCompliance:
        """The device's record. `share`: makes the record's patch-id tuples from its lists; the
        planner passes one that hands out one tuple per distinct list (`PassFacts.shared`)."""
        # staleness on the server's clock: the agent's `scannedAt` may be years off
        if scan is None or now - scan.fresh_at > self.baseline.spec.stale_scan_after:
            scanned_at = scan.scanned_at if scan else None
            unknown = ComplianceState.UNKNOWN
            return BaselineCompliance(device_id, self.ref, unknown, scanned_at)
        if history.failed or history.pending_reboot:
            fields = self._fields(scan, history, share)
        else:
            key = (scan.missing, scan.installed, scan.reboot_required and scan.pending_reboot)
            found = self._by_scan.get(key)
            if found is None:
                if len(self._by_scan) >= SCANS_REMEMBERED:
                    self._by_scan.clear()
                found = self._by_scan[key] = self._fields(scan, history, share)
            fields = found
        state, missing, failed, rebooting, rejected, installed, not_applicable = fields
        return BaselineCompliance(
            device_id,
            self.ref,
            state,
            scan.scanned_at,
            missing,
            failed,
            rebooting,
            rejected,
            installed,
            not_applicable,
        )

    def _fields(
        self,
        scan: ScanView,
        history: DeviceHistory,
        share: Callable[[list[str]], tuple[str, ...]],
    ) -> _Fields:
        """The record's fields but device, baseline and scan time, for a fresh scan."""
        # The hot loops of a reconcile: plain lists and local names, no per-patch objects.
        missing: list[str] = []
        failed: list[str] = []
        not_applicable = 0
        if_missing, failed_before = self._if_missing, history.failed
        for patch_id in scan.missing:
            state = if_missing[patch_id]
            if state is PatchState.MISSING:
                (failed if patch_id in failed_before else missing).append(patch_id)
            elif state is not None:
                not_applicable += 1
        installed = 0
        rebooting: list[str] = []
        rejected: list[str] = []
        if_installed = self._if_installed
        # The OS signal decides (DESIGN.md 3.6, 3.9), whoever installed the patch: patchctl's
        # job (the ledger) or anyone else (the edge's attribution, `core.reboots`).
        waiting = (
            (history.pending_reboot | set(scan.pending_reboot))
            if scan.reboot_required
            else frozenset()
        )
        for patch_id in scan.installed:
            state = if_installed[patch_id]
            if state is PatchState.INSTALLED:
                if patch_id in waiting:
                    rebooting.append(patch_id)
                else:
                    installed += 1
            elif state is not None:
                rejected.append(patch_id)
        non_compliant = missing or failed or rebooting or rejected
        return (
            ComplianceState.NON_COMPLIANT if non_compliant else ComplianceState.COMPLIANT,
            share(missing),
            share(failed),
            share(rebooting),
            share(rejected),
            installed,
            not_applicable,
        )

    def _missing_state(self, patch_id: str) -> PatchState | None:
        """The state of a missing patch before the device's history is applied."""
        decision = self.decisions[patch_id]
        if self.ref not in decision.required_by or decision.excluded_by:
            return None
        return PatchState.NOT_APPLICABLE if decision.not_applicable else PatchState.MISSING

    def _installed_state(self, patch_id: str) -> PatchState | None:
        """The state of an installed patch before the device's history is applied."""
        decision = self.decisions[patch_id]
        if self.ref in decision.excluded_by:
            return PatchState.INSTALLED_REJECTED if self.block else None
        if self.ref not in decision.required_by or decision.excluded_by:
            return None
        return PatchState.INSTALLED


class LazyMap(dict[K, V]):
    """A dict that computes a missing value once, on first access."""

    def __init__(self, compute: Callable[[K], V]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: K) -> V:
        value = self._compute(key)
        self[key] = value
        return value
