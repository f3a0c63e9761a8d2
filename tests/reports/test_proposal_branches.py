"""Approval proposal branches in real git repositories: created, updated when a feed adds a patch,
deleted when a human approval covers the patches, and a human's branch never touched.

The fleet (one Linux device) and the catalogue are plain values; the policy is the repository's
own YAML through the real loader, and the proposals come from a real planner pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import pytest

from controller.core.observed import DeviceView, ObservedState, ScanView
from controller.core.patches import PatchRecord
from controller.core.plan import plan
from controller.core.proposals import Proposal, from_plan
from controller.forges.clients import client_for
from controller.forges.settings import ForgeKind, ForgeSettings
from controller.kinds.common import Classification, OsFamily, Severity
from controller.reports.proposals import sync_branches
from controller.runtime.proposals import ProposalRun, run_proposals
from controller.sources.loading import SourceFile, load_policy
from controller.testing import ALICE, FakeForge, PolicyRepo

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BRANCH = "patchctl/proposals/acme/retail/web"
FILE = "policies/approvals/proposed/acme/retail/web.yaml"
POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux-web, tenant: acme/retail}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: web, tenant: acme/retail}
spec: {os: linux, targets: {groups: [linux-web]}, rules: [{classifications: [security]}]}
---
apiVersion: patchctl/v1
kind: ApprovalProposal
metadata: {name: weekly, tenant: acme}
spec: {minimumReleaseAge: 7d}
"""
LABELLED = "{minimumReleaseAge: 7d, labels: [patches], reviewers: [alice]}"
HUMAN_APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: november, tenant: acme/retail}
spec: {patches: [USN-1-1, USN-2-1], targets: {groups: [linux-web]}, reason: reviewed}
"""


def usn(patch_id: str) -> PatchRecord:
    return PatchRecord(
        id=patch_id,
        os=OsFamily.LINUX,
        vendor="ubuntu",
        classification=Classification.SECURITY,
        severity=Severity.IMPORTANT,
        released=date(2026, 11, 1),
    )


def fleet(*missing: str) -> ObservedState:
    host = DeviceView(
        id="id-web-01",
        tenant="acme/retail",
        name="web-01",
        os=OsFamily.LINUX,
        os_name="Ubuntu",
        os_version="24.04",
        role="server",
        enrolled_at=NOW - timedelta(days=30),
        last_seen=NOW - timedelta(seconds=30),
        poll_interval=timedelta(seconds=60),
    )
    scan = ScanView(scanned_at=NOW - timedelta(hours=1), reboot_required=False, missing=missing)
    return ObservedState(
        devices=(host,), scans={host.id: scan}, catalogue={p: usn(p) for p in missing}
    )


def proposals(repo: PolicyRepo, observed: ObservedState) -> tuple[Proposal, ...]:
    files = [
        SourceFile(str(p.relative_to(repo.path)), p.read_bytes())
        for p in sorted((repo.path / "policies").rglob("*.yaml"))
    ]
    loaded = load_policy(files, revision="main")
    assert loaded.state is not None, [str(p) for p in loaded.problems]
    return from_plan(loaded.state, observed, plan(loaded.state, observed, now=NOW))


def show(repo: git.Repo, rev: str, path: str) -> str:
    return str(repo.git.show(f"{rev}:{path}"))


def beyond_main(repo: git.Repo, branch: str) -> list[str]:
    return str(repo.git.rev_list(branch, "--not", "main")).split()


def make_repo(tmp_path: Path) -> PolicyRepo:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("policies/all.yaml", POLICY)
    repo.commit("policy")
    return repo


def test_a_branch_appears_updates_when_a_feed_adds_a_patch_and_goes_when_approved(
    tmp_path: Path,
) -> None:
    policy = make_repo(tmp_path)
    repo = policy.repo
    main = repo.head.commit.hexsha
    index_before = (policy.path / ".git" / "index").read_bytes()

    first = sync_branches(repo, base=main, proposals=proposals(policy, fleet("USN-1-1")))
    assert (first.created, first.updated, first.deleted, first.foreign) == ((BRANCH,), (), (), ())
    assert '  patches: ["USN-1-1"]\n' in show(repo, BRANCH, FILE) + "\n"
    assert show(repo, BRANCH, "policies/all.yaml") == POLICY.rstrip("\n")
    assert len(beyond_main(repo, BRANCH)) == 1
    assert repo.git.log("-1", "--format=%an <%ae>|%s", BRANCH) == (
        "patchctl <patchctl@localhost>|Approve 1 patch for acme/retail/web"
    )
    # Nothing checked out changed: main, the index and the working tree.
    assert repo.head.commit.hexsha == main
    assert index_before == (policy.path / ".git" / "index").read_bytes()
    assert not (policy.path / "policies" / "approvals").exists()

    again = sync_branches(repo, base=main, proposals=proposals(policy, fleet("USN-1-1")))
    assert again.unchanged == (BRANCH,)
    assert again.commits[BRANCH] == first.commits[BRANCH]

    # The feed adds USN-2-1: the branch is rewritten on main, still one commit.
    moved = sync_branches(repo, base=main, proposals=proposals(policy, fleet("USN-1-1", "USN-2-1")))
    assert moved.updated == (BRANCH,)
    assert '  patches: ["USN-1-1", "USN-2-1"]' in show(repo, BRANCH, FILE)
    assert beyond_main(repo, BRANCH) == [moved.commits[BRANCH]]

    # A human approval covering both is merged: nothing is left to propose; the branch goes.
    policy.write("policies/approvals/november.yaml", HUMAN_APPROVAL)
    merged = policy.commit("approve november")
    left = proposals(policy, fleet("USN-1-1", "USN-2-1"))
    assert left == ()
    gone = sync_branches(repo, base=merged, proposals=left)
    assert gone.deleted == (BRANCH,)
    assert BRANCH not in [h.name for h in repo.heads]


def test_a_new_main_rebases_the_proposal(tmp_path: Path) -> None:
    policy = make_repo(tmp_path)
    repo = policy.repo
    found = proposals(policy, fleet("USN-1-1"))
    sync_branches(repo, base=repo.head.commit.hexsha, proposals=found)
    policy.write("policies/extra.yaml", "# a comment only\n")
    newer = policy.commit("unrelated change")
    result = sync_branches(repo, base=newer, proposals=found)
    assert result.updated == (BRANCH,)
    assert repo.git.rev_parse(f"{BRANCH}^") == newer


def test_a_humans_branch_of_the_same_name_is_never_touched(tmp_path: Path) -> None:
    policy = make_repo(tmp_path)
    repo = policy.repo
    main = repo.head.commit.hexsha
    repo.git.checkout("-b", BRANCH)
    policy.write(FILE, "# my own proposal\n")
    human = policy.commit("my proposal", author=ALICE)
    repo.git.checkout("main")

    result = sync_branches(repo, base=main, proposals=proposals(policy, fleet("USN-1-1")))
    assert (result.created, result.updated, result.foreign) == ((), (), (BRANCH,))
    assert repo.git.rev_parse(BRANCH) == human
    # Nothing to propose: still not deleted.
    result = sync_branches(repo, base=main, proposals=())
    assert (result.deleted, result.foreign) == ((), (BRANCH,))
    assert repo.git.rev_parse(BRANCH) == human


def test_a_controller_branch_a_human_pushed_onto_is_theirs_now(tmp_path: Path) -> None:
    policy = make_repo(tmp_path)
    repo = policy.repo
    main = repo.head.commit.hexsha
    sync_branches(repo, base=main, proposals=proposals(policy, fleet("USN-1-1")))
    repo.git.checkout(BRANCH)
    policy.write("policies/note.yaml", "# reviewed, with a note\n")
    human = policy.commit("note", author=ALICE)
    repo.git.checkout("main")
    result = sync_branches(
        repo, base=main, proposals=proposals(policy, fleet("USN-1-1", "USN-2-1"))
    )
    assert result.foreign == (BRANCH,)
    assert repo.git.rev_parse(BRANCH) == human


def test_a_remote_gets_the_branch_pushed_and_deleted(tmp_path: Path) -> None:
    policy = make_repo(tmp_path)
    origin = git.Repo.clone_from(str(policy.path), tmp_path / "origin.git", bare=True)
    work = git.Repo.clone_from(str(tmp_path / "origin.git"), tmp_path / "work", bare=True)
    main = work.git.rev_parse("main")
    found = proposals(policy, fleet("USN-1-1"))
    pushed = sync_branches(work, base=main, proposals=found, remote="origin")
    assert pushed.created == (BRANCH,)
    assert origin.git.rev_parse(BRANCH) == pushed.commits[BRANCH]
    assert sync_branches(work, base=main, proposals=found, remote="origin").unchanged == (BRANCH,)
    deleted = sync_branches(work, base=main, proposals=(), remote="origin")
    assert deleted.deleted == (BRANCH,)
    assert BRANCH not in str(origin.git.branch("--list"))


TOKEN = "forge-token-for-tests"  # noqa: S105 - the fake forge's token


def run(policy: PolicyRepo, observed: ObservedState, forge: Any) -> ProposalRun:
    files = [
        SourceFile(str(p.relative_to(policy.path)), p.read_bytes())
        for p in sorted((policy.path / "policies").rglob("*.yaml"))
    ]
    loaded = load_policy(files, revision="main")
    assert loaded.state is not None
    result = plan(loaded.state, observed, now=NOW)
    return run_proposals(
        policy.repo,
        branch="main",
        desired=loaded.state,
        observed=observed,
        result=result,
        forge=forge,
    )


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_the_pull_request_opens_updates_and_closes_with_the_branch(
    tmp_path: Path, kind: str
) -> None:
    policy = make_repo(tmp_path)
    policy.write("policies/all.yaml", POLICY.replace("{minimumReleaseAge: 7d}", LABELLED))
    policy.commit("labels and reviewers")
    fake = FakeForge(kind=kind, token=TOKEN, users={"alice": 11})
    fake.start()
    settings = ForgeSettings(
        kind=ForgeKind(kind), url=fake.url, repository=fake.repository, token=TOKEN
    )
    forge = client_for(settings, clock=lambda: NOW)
    try:
        first = run(policy, fleet("USN-1-1"), forge)
        assert first.pull_requests == {BRANCH: (1, "created")}
        pull = fake.pulls[1]
        body_key, head = (
            ("description", pull.get("source_branch"))
            if kind == "gitlab"
            else (
                "body",
                pull["head"]["ref"],
            )
        )
        assert head == BRANCH
        assert pull["title"] == "Approve 1 patch for acme/retail/web"
        assert pull[body_key].startswith(
            "patchctl proposes approving USN-1-1 for `Baseline acme/retail/web` in tenant "
            "`acme/retail`. Merging this pull request is the approval"
        )
        # The body is the plan: the proposed Approval is the one object that changes.
        assert "1 policy object(s) change." in pull[body_key]
        assert "proposed-web" in pull[body_key]
        names = [label if kind == "gitlab" else label["name"] for label in pull["labels"]]
        assert ["patches"] == names
        reviewers, name = (
            (pull["reviewers"], "username")
            if kind == "gitlab"
            else (pull["requested_reviewers"], "login")
        )
        assert ["alice"] == [reviewer[name] for reviewer in reviewers]

        assert run(policy, fleet("USN-1-1"), forge).pull_requests == {BRANCH: (1, "unchanged")}
        moved = run(policy, fleet("USN-1-1", "USN-2-1"), forge)
        assert moved.pull_requests == {BRANCH: (1, "edited")}
        assert fake.pulls[1]["title"] == "Approve 2 patches for acme/retail/web"
        assert len(fake.pulls) == 1

        policy.write("policies/approvals/november.yaml", HUMAN_APPROVAL)
        policy.commit("approve november")
        gone = run(policy, fleet("USN-1-1", "USN-2-1"), forge)
        assert (gone.sync.deleted, gone.closed) == ((BRANCH,), {BRANCH: 1})
        assert fake.pulls[1]["state"] == "closed"
    finally:
        forge.close()
        fake.stop()


MONDAY_MORNINGS = (
    "{minimumReleaseAge: 7d, schedule: {recurrence: {cron: '0 6 * * 1'}, duration: 4h}}"
)
MONDAY_NOON = "{minimumReleaseAge: 7d, schedule: {recurrence: {cron: '0 11 * * 1'}, duration: 4h}}"


def test_outside_its_schedule_a_proposal_is_neither_opened_nor_updated(tmp_path: Path) -> None:
    """At Monday 12:00 a Monday 06:00-10:00 schedule holds proposals; 11:00-15:00 lets them move;
    a proposal with nothing left goes at once, schedule or not."""
    policy = make_repo(tmp_path)
    repo = policy.repo
    policy.write("policies/all.yaml", POLICY.replace("{minimumReleaseAge: 7d}", MONDAY_MORNINGS))
    closed = policy.commit("proposals on Monday mornings")
    held = proposals(policy, fleet("USN-1-1"))
    assert [True] == [p.hold for p in held]
    nothing = sync_branches(repo, base=closed, proposals=held)
    assert ((), (), ()) == (nothing.created, nothing.updated, nothing.unchanged)
    assert BRANCH not in [h.name for h in repo.heads]

    policy.write("policies/all.yaml", POLICY.replace("{minimumReleaseAge: 7d}", MONDAY_NOON))
    opened_at = policy.commit("proposals around noon")
    opened = sync_branches(repo, base=opened_at, proposals=proposals(policy, fleet("USN-1-1")))
    assert (BRANCH,) == opened.created

    policy.write("policies/all.yaml", POLICY.replace("{minimumReleaseAge: 7d}", MONDAY_MORNINGS))
    closed_again = policy.commit("back to mornings")
    later = proposals(policy, fleet("USN-1-1", "USN-2-1"))
    kept = sync_branches(repo, base=closed_again, proposals=later)
    assert ((BRANCH,), opened.commits[BRANCH]) == (kept.unchanged, repo.git.rev_parse(BRANCH))
    assert '  patches: ["USN-1-1"]' in show(repo, BRANCH, FILE)

    gone = sync_branches(repo, base=closed_again, proposals=())
    assert (BRANCH,) == gone.deleted
