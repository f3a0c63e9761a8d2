"""Approval proposals: the Approval file a person would merge for patches waiting for approval.

Purely computational. From the desired state, the plan of the pass (which required patches each
device misses and which of those wait for approval), the devices' tenants and the catalogue's
release dates come the proposals: one per (tenant, baseline), each with its patches, sorted, and
the Approval YAML document that would approve them. The runtime commits each document on the
branch `patchctl/proposals/<tenant>/<baseline>`; the merge of that branch is the human approval
(DESIGN.md: Linux stays manual-only).

The soak is Renovate's `minimumReleaseAge`: a patch is proposed once `released + soak <= now`
(release dates are days; a day starts at 00:00 UTC). A patch without a release date is never
proposed: its age cannot be shown to exceed the soak.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time

from controller.core import windows
from controller.core.compliance import BaselineCompliance
from controller.core.decisions import object_ref
from controller.core.desired import DesiredState
from controller.core.observed import ObservedState
from controller.core.patches import PatchRecord
from controller.core.plan import Plan
from controller.kinds import API_VERSION, ApprovalProposal, Baseline
from controller.kinds.common import format_duration, tenant_contains

BRANCH_PREFIX = "patchctl/proposals/"
NAME_PREFIX = "proposed-"
_MAX_NAME = 63  # `controller.kinds.common.Name`


@dataclass(frozen=True, slots=True)
class Proposal:
    """One proposed Approval: its branch, the file it writes and the document's text."""

    proposal: str  # object ref of the ApprovalProposal, "ApprovalProposal tenant/name"
    tenant: str
    baseline: str  # object ref, "Baseline tenant/name"
    baseline_name: str
    patches: tuple[str, ...]  # sorted
    name: str  # metadata.name of the proposed Approval
    branch: str  # patchctl/proposals/<tenant>/<baseline>
    path: str  # POSIX path of the Approval file in the policy repository
    document: str  # the YAML text
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    hold: bool = False  # outside its ApprovalProposal's schedule: not opened, not updated

    @property
    def title(self) -> str:
        count = len(self.patches)
        noun = "patch" if count == 1 else "patches"
        return f"Approve {count} {noun} for {self.tenant}/{self.baseline_name}"


def branch_name(tenant: str, baseline: str) -> str:
    """`patchctl/proposals/<tenant>/<baseline>`; a client tenant adds a level (`acme/retail`)."""
    return f"{BRANCH_PREFIX}{tenant}/{baseline}"


def approval_name(baseline: str) -> str:
    """`proposed-<baseline>`, shortened with a digest when longer than a policy name may be."""
    name = NAME_PREFIX + baseline
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(baseline.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9].rstrip('-')}-{digest}"


def pending_by_baseline(
    compliance: Iterable[BaselineCompliance],
    pending_approval: Mapping[str, Iterable[str]],
    device_tenants: Mapping[str, str],
) -> dict[tuple[str, str], set[str]]:
    """(device tenant, baseline ref) → the patches the baseline requires that some device of the
    tenant misses and that wait for approval there (`DeviceSummary.pending_approval`)."""
    pending = {device: frozenset(ids) for device, ids in pending_approval.items()}
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in compliance:
        waiting = pending.get(record.device_id, frozenset()).intersection(record.missing)
        tenant = device_tenants.get(record.device_id)
        if waiting and tenant is not None:
            found[(tenant, record.baseline)].update(waiting)
    return found


def soaked(record: PatchRecord | None, proposal: ApprovalProposal, *, now: datetime) -> bool:
    """Released at least `minimumReleaseAge` before `now`; an unknown release date never is."""
    if record is None or record.released is None:
        return False
    released = datetime.combine(record.released, time(0), tzinfo=UTC)
    return released + proposal.spec.minimum_release_age <= now


def propose(  # noqa: PLR0913 - keyword-only inputs of one pure computation
    desired: DesiredState,
    *,
    compliance: Iterable[BaselineCompliance],
    pending_approval: Mapping[str, Iterable[str]],
    device_tenants: Mapping[str, str],
    catalogue: Mapping[str, PatchRecord],
    now: datetime,
    open_branches: Iterable[str] = (),
    root: str = "policies",
) -> tuple[Proposal, ...]:
    """Every proposal to keep open, ordered by branch name.

    Each (tenant, baseline) goes to the first ApprovalProposal (by tenant, then name) that covers
    it. Within one ApprovalProposal at most `maxOpen` proposals are returned: branches already
    open (`open_branches`) keep their place, the others follow in branch-name order. `root` is the
    policy folder of the repository (`policies`; `""` = the top).
    """
    pending = pending_by_baseline(compliance, pending_approval, device_tenants)
    baselines = {object_ref(b): b for b in desired.baselines}
    already = frozenset(open_branches)
    claimed: set[tuple[str, str]] = set()
    chosen: list[Proposal] = []
    for spec_obj in sorted(desired.of_kind(ApprovalProposal), key=_order):
        candidates = []
        for (tenant, ref), patch_ids in sorted(pending.items()):
            baseline = baselines.get(ref)
            if (
                baseline is None
                or (tenant, ref) in claimed
                or not _covers(spec_obj, tenant, baseline)
            ):
                continue
            ready = sorted(p for p in patch_ids if soaked(catalogue.get(p), spec_obj, now=now))
            if ready:
                claimed.add((tenant, ref))
                found = _proposal(spec_obj, tenant, baseline, tuple(ready), root=root)
                candidates.append(replace(found, hold=not in_schedule(spec_obj, now=now)))
        candidates.sort(key=lambda p: (p.branch not in already, p.branch))
        chosen.extend(candidates[: spec_obj.spec.max_open])
    return tuple(sorted(chosen, key=lambda p: p.branch))


def in_schedule(obj: ApprovalProposal, *, now: datetime) -> bool:
    """Whether the object may open or update proposals at `now` (always without a schedule)."""
    schedule = obj.spec.schedule
    if schedule is None:
        return True
    return windows.is_open(
        schedule.occurrences(), obj.spec.schedule_timezone(), schedule.duration, now=now
    )


def _order(obj: ApprovalProposal) -> tuple[str, str]:
    return (obj.tenant or "", obj.name)


def _covers(obj: ApprovalProposal, tenant: str, baseline: Baseline) -> bool:
    names = obj.spec.baselines
    return tenant_contains(obj.tenant, tenant) and (not names or baseline.name in names)


def _proposal(
    obj: ApprovalProposal,
    tenant: str,
    baseline: Baseline,
    patches: tuple[str, ...],
    *,
    root: str,
) -> Proposal:
    name = approval_name(baseline.name)
    folder = f"{root.strip('/')}/" if root.strip("/") else ""
    return Proposal(
        proposal=object_ref(obj),
        tenant=tenant,
        baseline=object_ref(baseline),
        baseline_name=baseline.name,
        patches=patches,
        name=name,
        branch=branch_name(tenant, baseline.name),
        path=f"{folder}approvals/proposed/{tenant}/{baseline.name}.yaml",
        document=approval_document(obj, tenant, baseline, patches, name=name),
        labels=obj.spec.labels,
        reviewers=obj.spec.reviewers,
    )


def approval_document(
    obj: ApprovalProposal,
    tenant: str,
    baseline: Baseline,
    patches: tuple[str, ...],
    *,
    name: str,
) -> str:
    """The Approval as YAML: block style for the envelope, JSON flow style for values (JSON is
    YAML 1.2), so the text is stable for equal input and needs no YAML library."""
    targets = baseline.spec.targets.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    soak = format_duration(obj.spec.minimum_release_age)
    reason = (
        f"Proposed by patchctl ({object_ref(obj)}): required by {object_ref(baseline)}, "
        f"waiting for approval, released at least {soak} ago"
    )
    lines = [
        "# Proposed by patchctl. Merging this file approves the patches below.",
        f"apiVersion: {API_VERSION}",
        "kind: Approval",
        "metadata:",
        f"  name: {name}",
        f"  tenant: {json.dumps(tenant)}",
        "spec:",
        f"  patches: {json.dumps(list(patches))}",
        f"  targets: {json.dumps(targets, sort_keys=True)}",
        f"  reason: {json.dumps(reason)}",
    ]
    return "\n".join(lines) + "\n"


def from_plan(
    desired: DesiredState,
    observed: ObservedState,
    result: Plan,
    *,
    open_branches: Iterable[str] = (),
    root: str = "policies",
) -> tuple[Proposal, ...]:
    """`propose` fed from one planner pass: its compliance, its devices' pending approvals and
    the observed devices' tenants and catalogue, at the plan's instant."""
    return propose(
        desired,
        compliance=result.compliance,
        pending_approval={d.device_id: d.pending_approval for d in result.devices},
        device_tenants={d.id: d.tenant for d in observed.devices},
        catalogue=observed.catalogue,
        now=result.now,
        open_branches=open_branches,
        root=root,
    )
