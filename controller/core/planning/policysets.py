"""Policy sets: the policy objects that target a device, computed once per distinct set of
device facts, and the decisions per (policy set, patch), computed on first use.

Purely computational, no side effects. A fleet of 100,000 devices typically has a few dozen
policy sets, so target matching and decisions cost per set, not per device.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from controller.core import advisories, compliance, references, targets
from controller.core.decisions import Applicable, Decision, decide
from controller.core.desired import DesiredState
from controller.core.observed import DeviceView, ObservedState
from controller.core.planning.values import window_key
from controller.kinds import Document, ScriptJob

Facts = tuple[object, ...]
"""What target matching reads of a device: tenant, name (when a policy names it), OS, labels."""


class PolicySets:
    """Applicable policy objects per distinct device facts, and decisions per (set, patch)."""

    def __init__(self, desired: DesiredState, observed: ObservedState, *, today: date) -> None:
        self.desired = desired
        self.observed = observed
        self.today = today
        self.named = targets.named_devices(desired)
        self._by_facts: dict[tuple[object, ...], Applicable] = {}
        self._script_jobs: dict[int, tuple[ScriptJob, ...]] = {}
        self._decisions: dict[int, compliance.LazyMap[str, Decision]] = {}
        self._evaluators: dict[int, tuple[compliance.BaselineEvaluator, ...]] = {}
        self._advisories: advisories.AdvisoryIndex | None = None
        self.job_patches = advisories.JobPatches(observed.patch)
        self._listed_advisories: dict[int, frozenset[str]] = {}

    def advisory_index(self) -> advisories.AdvisoryIndex:
        """The catalogue's Debian and Ubuntu advisories, indexed on first use."""
        if self._advisories is None:
            self._advisories = advisories.AdvisoryIndex(self.observed.catalogue.values())
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
            record=self.observed.patch,
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
            today, patch = self.today, self.observed.patch
            found = compliance.LazyMap(lambda p: decide(applicable, patch(p), today=today))
            self._decisions[id(applicable)] = found
        return found

    def evaluators(self, applicable: Applicable) -> tuple[compliance.BaselineEvaluator, ...]:
        found = self._evaluators.get(id(applicable))
        if found is None:
            decisions = self.decisions(applicable)
            found = tuple(compliance.BaselineEvaluator(b, decisions) for b in applicable.baselines)
            self._evaluators[id(applicable)] = found
        return found


T = TypeVar("T", bound=Document)


def _targets(obj: Document, device: DeviceView, desired: DesiredState) -> bool:
    spec_targets = references.targets_of(obj)
    return spec_targets is not None and targets.matches(
        spec_targets, owner=obj.tenant, device=device, desired=desired
    )
