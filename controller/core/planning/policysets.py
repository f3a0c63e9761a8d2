"""Policy sets: the policy objects that target a device, computed once per distinct set of
device facts, and the decisions per (policy set, patch), computed on first use.

Purely computational, no side effects. A fleet of 100,000 devices typically has a few dozen
policy sets, so target matching and decisions cost per set, not per device.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TypeVar

from controller.core import advisories, compliance, references, targets
from controller.core.decisions import Applicable, Decision, decide
from controller.core.desired import DesiredState
from controller.core.observed import DeviceView, ObservedState
from controller.core.patches import PatchRecord
from controller.core.planning.values import window_key
from controller.kinds import Document, ScriptJob

Facts = tuple[object, ...]
"""What target matching reads of a device: tenant, name (when a policy names it), OS, labels."""


class PolicySets:
    """Applicable policy objects per distinct device facts, and decisions per (set, patch).

    Keeps the catalogue of the observed state, not the state itself: the incremental planner
    keeps a `PolicySets` across passes, and must not keep every pass's scans and jobs alive."""

    def __init__(self, desired: DesiredState, observed: ObservedState, *, today: date) -> None:
        self.desired = desired
        self.catalogue: Mapping[str, PatchRecord] = observed.catalogue
        self.today = today
        self.named = targets.named_devices(desired)
        self._by_facts: dict[tuple[object, ...], Applicable] = {}
        self._script_jobs: dict[int, tuple[ScriptJob, ...]] = {}
        self._decisions: dict[int, compliance.LazyMap[str, Decision]] = {}
        self._evaluators: dict[int, tuple[compliance.BaselineEvaluator, ...]] = {}
        # per set: missing list → (installable, pending approval)
        self._triaged: dict[
            int, dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]]
        ] = {}
        self._advisories: advisories.AdvisoryIndex | None = None
        self.job_patches = advisories.JobPatches(self.patch)
        self._listed_advisories: dict[int, frozenset[str]] = {}
        self._replaced: list[Applicable] = []

    def patch(self, patch_id: str) -> PatchRecord:
        """The catalogue record, or a bare one (`ObservedState.patch`)."""
        return _record(self.catalogue, patch_id)

    def advisory_index(self) -> advisories.AdvisoryIndex:
        """The catalogue's Debian and Ubuntu advisories, indexed on first use."""
        if self._advisories is None:
            self._advisories = advisories.AdvisoryIndex(self.catalogue.values())
        return self._advisories

    def grouping(self, applicable: Applicable, missing: tuple[str, ...]) -> advisories.Grouping:
        """The device's package patches approved through an approved, missing advisory."""
        listed = self._listed_advisories.get(id(applicable))
        if listed is None:
            index = self.advisory_index()
            ids = {p for a in applicable.approvals for p in a.spec.patches}
            ids.update(p for w in applicable.whitelists for p in w.explicit_ids())
            listed = frozenset(p for p in ids if p in index) if index else frozenset()
            self._listed_advisories[id(applicable)] = listed
        if not listed or listed.isdisjoint(missing):
            return advisories.NOTHING
        return advisories.group(
            missing,
            self.decisions(applicable),
            index=self.advisory_index(),
            record=self.patch,
        )

    def facts(self, device: DeviceView) -> Facts:
        """The device facts target matching reads: devices with equal facts share a set."""
        return (
            device.tenant,
            device.name if device.name in self.named else None,
            device.os,
            device.os_name,
            device.os_version,
            tuple(sorted(device.labels.items())),
        )

    def evaluated(self, facts: Facts) -> Applicable | None:
        """The policy set already found for `facts`, if any."""
        return self._by_facts.get(facts)

    def adopt(self, facts: Facts, applicable: Applicable, earlier: PolicySets) -> None:
        """Take `earlier`'s set for `facts`, which the caller found equal by content (objects,
        script jobs, scripts) to the one this revision evaluated, with the decisions `earlier`
        computed for it: they depend only on the set's content, the catalogue and the day, and
        the caller checked those are unchanged. Its devices keep their set object, and with it
        their kept plans."""
        found = self._by_facts.get(facts)
        if found is not None and found is not applicable:
            # kept alive: per-pass caches are keyed by `id()`, which must not be reused
            self._replaced.append(found)
        self._by_facts[facts] = applicable
        key = id(applicable)
        self._script_jobs[key] = earlier.script_jobs(applicable)
        if key in earlier._decisions:
            self._decisions[key] = earlier._decisions[key]
        if key in earlier._evaluators:
            self._evaluators[key] = earlier._evaluators[key]
        if key in earlier._listed_advisories:
            self._listed_advisories[key] = earlier._listed_advisories[key]
        if key in earlier._triaged:
            self._triaged[key] = earlier._triaged[key]

    def applicable(self, device: DeviceView, facts: Facts | None = None) -> Applicable:
        """The policy objects targeting `device` (`facts`: its `facts()`, if known)."""
        if facts is None:
            facts = self.facts(device)
        found = self._by_facts.get(facts)
        if found is None:
            found = self._evaluate(device)
            self._by_facts[facts] = found
        return found

    def _evaluate(self, device: DeviceView) -> Applicable:
        desired = self.desired

        def targeting(objects: tuple[T, ...]) -> tuple[T, ...]:
            return tuple(o for o in objects if _targets(o, device, desired))

        found = Applicable(
            os=device.os,
            baselines=tuple(b for b in targeting(desired.baselines) if b.spec.os == device.os),
            whitelists=targeting(desired.whitelists),
            approvals=targeting(desired.approvals),
            windows=tuple(
                sorted(
                    (w for w in targeting(desired.windows) if not w.spec.suspend), key=window_key
                )
            ),
            scan_schedules=targeting(desired.scan_schedules),
        )
        self._script_jobs[id(found)] = targeting(desired.script_jobs)
        return found

    def script_jobs(self, applicable: Applicable) -> tuple[ScriptJob, ...]:
        return self._script_jobs.get(id(applicable), ())

    def decisions(self, applicable: Applicable) -> compliance.LazyMap[str, Decision]:
        """Decisions for `applicable`, computed on first use of each patch id."""
        found = self._decisions.get(id(applicable))
        if found is None:
            # the closure keeps the catalogue, not this object: `adopt` hands it to the next
            today, catalogue = self.today, self.catalogue
            found = compliance.LazyMap(
                lambda p: decide(applicable, _record(catalogue, p), today=today)
            )
            self._decisions[id(applicable)] = found
        return found

    def triaged(
        self, applicable: Applicable, missing: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The `missing` patches that are installable under `applicable`, and those pending
        approval, in scan order; computed once per distinct missing list (most devices of a
        set share one), up to `compliance.SCANS_REMEMBERED` lists per set."""
        known = self._triaged.get(id(applicable))
        if known is None:
            known = self._triaged[id(applicable)] = {}
        found = known.get(missing)
        if found is None:
            if len(known) >= compliance.SCANS_REMEMBERED:
                known.clear()
            found = known[missing] = self._triage(applicable, missing)
        return found

    def _triage(
        self, applicable: Applicable, missing: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        decisions = self.decisions(applicable)
        grouping = self.grouping(applicable, missing)
        if grouping is advisories.NOTHING:
            found = list(map(decisions.__getitem__, missing))
        else:
            found = [grouping.decision(patch_id, decisions) for patch_id in missing]
        installable = tuple(p for p, d in zip(missing, found, strict=True) if d.installable)
        pending = tuple(p for p, d in zip(missing, found, strict=True) if d.pending_approval)
        return installable, pending

    def evaluators(self, applicable: Applicable) -> tuple[compliance.BaselineEvaluator, ...]:
        found = self._evaluators.get(id(applicable))
        if found is None:
            decisions = self.decisions(applicable)
            found = tuple(compliance.BaselineEvaluator(b, decisions) for b in applicable.baselines)
            self._evaluators[id(applicable)] = found
        return found


T = TypeVar("T", bound=Document)


def _record(catalogue: Mapping[str, PatchRecord], patch_id: str) -> PatchRecord:
    found = catalogue.get(patch_id)
    return found if found is not None else PatchRecord(id=patch_id)


def _targets(obj: Document, device: DeviceView, desired: DesiredState) -> bool:
    spec_targets = references.targets_of(obj)
    return spec_targets is not None and targets.matches(
        spec_targets, owner=obj.tenant, device=device, desired=desired
    )
