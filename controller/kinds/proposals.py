"""ApprovalProposal: the controller proposes Approval files for patches that wait for approval.

Like Renovate's pull requests for dependency updates (its `minimumReleaseAge`, `prConcurrentLimit`,
`labels` and `reviewers` options), but the merge of the proposal is the human approval: nothing
is installed before a person merges it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import Document, Duration, Model, Name, PositiveDuration, TimeZone
from controller.kinds.windows import Recurrence


class ProposalSchedule(Model):
    """When proposals may be opened or updated (Renovate's `schedule`): the times an occurrence
    is open. Outside them the branches and pull requests stay as they are; a proposal nothing is
    left in is still removed at once."""

    recurrence: Recurrence = Field(
        description="When an occurrence opens (cron, patchTuesday, once)."
    )
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the recurrence.")
    duration: PositiveDuration = Field(description="How long each occurrence stays open, e.g. 6h.")


class ApprovalProposalSpec(Model):
    baselines: tuple[Name, ...] = Field(
        default=(),
        description="Names of the baselines proposed for the devices of the proposal's tenant "
        "and its clients (every tenant when it has none); empty = every baseline. One proposal "
        "per tenant and baseline.",
    )
    minimum_release_age: Duration = Field(
        default=timedelta(days=3),
        description="Soak: a patch is proposed only this long after its release date (UTC "
        "midnight); 0s proposes it on its release day. A patch whose release date is unknown "
        "is never proposed.",
    )
    max_open: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Most proposal branches open at once for this object; the oldest-named "
        "(tenant, baseline) pairs come first.",
    )
    labels: tuple[str, ...] = Field(
        default=(), description="Labels set on the pull/merge request opened through the forge."
    )
    reviewers: tuple[str, ...] = Field(
        default=(), description="Forge user names asked to review the pull/merge request."
    )
    schedule: ProposalSchedule | None = Field(
        default=None,
        description="Open and update proposals only while an occurrence of this schedule is "
        "open (e.g. cron `0 6 * * 1`, duration 4h: Monday mornings); default: after every pass.",
    )


class ApprovalProposal(Document):
    """Branches (and, with a forge, pull requests) proposing Approvals for pending patches."""

    KIND: ClassVar[str] = "ApprovalProposal"
    kind: Literal["ApprovalProposal"] = Field(description="Always `ApprovalProposal`.")
    spec: ApprovalProposalSpec = Field(description="Baselines, soak, limit, labels, reviewers.")
