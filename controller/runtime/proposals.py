"""The approval-proposal chore: after a pass, keep one branch (and, with a forge, one pull
request) per (tenant, baseline) whose required patches wait for approval.

The proposals come from `controller.core.proposals` (pure); the branches are written by
`controller.reports.proposals` (git plumbing, only the controller's own branches); the pull
request's body is the plan of the proposal against the enforced branch (`runtime.plans`, the
same plan the forge publisher comments on pull requests). A deleted branch's pull request is
closed. The merge stays the human approval: nothing here approves anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import git
import structlog

from controller.core import proposals as core
from controller.core import review
from controller.core.desired import DesiredState
from controller.core.observed import ObservedState
from controller.core.plan import Plan
from controller.core.revisions import format_revision
from controller.forges.clients import ProposalForge, PullRequestProposal
from controller.reports.proposals import SyncResult, existing_branches, sync_branches
from controller.runtime import plans
from controller.sources import git as git_source
from controller.sources import loading

log = structlog.get_logger("patchctl.proposals")


@dataclass(frozen=True, slots=True)
class ProposalRun:
    """What one round did: the branch sync and the pull requests per branch."""

    sync: SyncResult
    pull_requests: dict[str, tuple[int, str]]  # branch → (number, created|edited|unchanged)
    closed: dict[str, int | None]  # deleted branch → the closed pull request (None: none open)


def run_proposals(  # noqa: PLR0913 - keyword-only inputs of one round
    repo: git.Repo,
    *,
    branch: str,
    desired: DesiredState,
    observed: ObservedState,
    result: Plan,
    forge: ProposalForge | None = None,
    remote: str | None = None,
    base: str | None = None,
) -> ProposalRun:
    """One round against `branch` (the enforced branch) of `repo`, pushing to `remote` when
    given; proposals build on `base` (the applied commit; default: the branch's tip). Raises
    `WritebackError` (git) or `ForgeError` (the forge) for the chore to record."""
    base = base or git_source.resolve_tip(repo, branch)
    existing = existing_branches(repo, remote)
    wanted = core.from_plan(desired, observed, result, open_branches=existing)
    sync = sync_branches(repo, base=base, proposals=wanted, remote=remote)
    opened: dict[str, tuple[int, str]] = {}
    closed: dict[str, int | None] = {}
    if forge is not None:
        body = _plan_body(repo, base, branch, observed=observed, now=result.now)
        for proposal in wanted:
            commit = sync.commits.get(proposal.branch)
            if commit is None or proposal.hold:  # a human's branch, or outside the schedule
                continue
            opened[proposal.branch] = forge.upsert_pull_request(
                PullRequestProposal(
                    head=proposal.branch,
                    base=branch,
                    title=proposal.title,
                    body=body(proposal, commit),
                    labels=proposal.labels,
                    reviewers=proposal.reviewers,
                )
            )
        for gone in sync.deleted:
            closed[gone] = forge.close_pull_request(gone)
    log.info(
        "approval proposals",
        created=len(sync.created),
        updated=len(sync.updated),
        deleted=len(sync.deleted),
        foreign=len(sync.foreign),
    )
    return ProposalRun(sync, opened, closed)


def _plan_body(
    repo: git.Repo, base: str, branch: str, *, observed: ObservedState, now: datetime
) -> Callable[[core.Proposal, str], str]:
    """The pull request body of a proposal: the plan from the enforced tip to its commit."""
    base_state = loading.load_policy(
        git_source.read_commit(repo, base), revision=format_revision(branch, base)
    ).state
    catalogue = review.catalogue_from_records(observed.catalogue.values())

    def body(proposal: core.Proposal, commit: str) -> str:
        head = loading.load_policy(
            git_source.read_commit(repo, commit),
            revision=format_revision(proposal.branch, commit),
        ).state
        intro = (
            f"patchctl proposes approving {', '.join(proposal.patches)} for "
            f"`{proposal.baseline}` in tenant `{proposal.tenant}`. Merging this pull request is "
            "the approval; closing it leaves the patches waiting.\n\n"
        )
        if base_state is None or head is None:
            return intro + "The plan is not available: the policy does not validate."
        document = plans.plan_document(
            base_state, head, now=now, observed=observed, catalogue=catalogue
        )
        return intro + plans.render_markdown(document)

    return body
