"""Revisions named by the ref they were given as, ref text checked before it reaches git, and
forge pull-request refs fetched into a clone: real git repositories in tmp_path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.sources import git as git_source
from controller.sources import refs, repository
from controller.testing import PolicyRepo

APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: openssl, tenant: acme/retail}
spec: {patches: [USN-1-1], targets: {groups: [linux-web]}, reason: hotfix}
"""


@dataclass
class Forge:
    """A repository as a forge holds it: main, a PR branch, and the forge's PR refs."""

    repo: PolicyRepo
    main: str
    pr: str
    fork: str  # a fork's PR head: only under refs/pull/7/head and refs/merge-requests/7/head


@pytest.fixture
def forge(policy_repo: PolicyRepo) -> Forge:
    policy_repo.write("policies/approvals/old.yaml", APPROVAL.replace("openssl", "old"))
    main = policy_repo.commit("a second commit on main")
    policy_repo.repo.git.checkout("-q", "-b", "bob/openssl")
    policy_repo.write("policies/approvals/openssl.yaml", APPROVAL)
    pr = policy_repo.commit("approve USN-1-1")
    policy_repo.write("policies/approvals/openssl.yaml", APPROVAL.replace("hotfix", "fork"))
    fork = policy_repo.commit("from a fork")
    policy_repo.repo.git.reset("-q", "--hard", pr)
    policy_repo.repo.git.checkout("-q", "main")
    policy_repo.repo.git.update_ref("refs/pull/42/head", pr)
    policy_repo.repo.git.update_ref("refs/pull/7/head", fork)
    policy_repo.repo.git.update_ref("refs/merge-requests/7/head", fork)
    policy_repo.repo.git.tag("v1", main)
    return Forge(policy_repo, main, pr, fork)


@pytest.mark.parametrize(
    ("rev", "sha", "expected"),
    [
        pytest.param("refs/pull/42/head", "pr", "pr-42", id="github-pr-ref"),
        pytest.param("refs/merge-requests/7/head", "fork", "mr-7", id="gitlab-mr-ref"),
        pytest.param("refs/remotes/pull/42/merge", "pr", "pr-42", id="actions-checkout-ref"),
        pytest.param("bob/openssl", "pr", "bob/openssl", id="branch"),
        pytest.param("refs/heads/bob/openssl", "pr", "bob/openssl", id="full-branch-ref"),
        pytest.param("main", "main", "main", id="main"),
        pytest.param("v1", "main", "v1", id="tag"),
        pytest.param("PR_SHA", "pr", "pr-42", id="sha-of-a-pr-head"),
        pytest.param("FORK_SHA", "fork", "mr-7", id="sha-of-a-fork-head-first-by-name"),
        pytest.param("HEAD", "main", "main", id="head-on-a-branch"),
        pytest.param("PR_SHA~1", "main", "main", id="expression-at-a-branch-tip"),
        pytest.param("MAIN_SHA~1", "main~1", "main", id="older-commit-of-main"),
    ],
)
def test_a_revision_is_named_after_its_ref(forge: Forge, rev: str, sha: str, expected: str) -> None:
    """PR refs read `pr-N`/`mr-N`, branches and tags their name, a commit id a ref at its tip."""
    shas = {
        "main": forge.main,
        "main~1": forge.repo.repo.commit(f"{forge.main}~1").hexsha,
        "pr": forge.pr,
        "fork": forge.fork,
    }
    rev = rev.replace("PR_SHA", forge.pr).replace("FORK_SHA", forge.fork)
    rev = rev.replace("MAIN_SHA", forge.main)
    assert expected == refs.label(forge.repo.repo, rev, shas[sha])


def test_a_commit_no_branch_holds_is_detached(forge: Forge) -> None:
    """A commit no ref points at and no branch's history holds is named `detached`, never the
    checked-out branch."""
    forge.repo.write("policies/approvals/other.yaml", APPROVAL.replace("openssl", "other"))
    loose = forge.repo.commit("loose")
    forge.repo.repo.git.reset("-q", "--hard", forge.main)
    assert "detached" == refs.label(forge.repo.repo, loose, loose)


def test_loading_a_pr_head_labels_its_revision(forge: Forge, tmp_path: Path) -> None:
    """`repository.load(rev=refs/pull/42/head)` reads that commit and calls it `pr-42@sha1:…`."""
    loaded = repository.load(
        str(forge.repo.path), state_dir=tmp_path / "state", rev="refs/pull/42/head"
    )
    assert f"pr-42@sha1:{forge.pr}" == loaded.revision
    assert loaded.result.state is not None
    assert ["old", "openssl"] == [a.name for a in loaded.result.state.approvals]


@pytest.mark.parametrize(
    "text",
    [
        "main",
        "bob/openssl",
        "release-2026.12",
        "refs/pull/42/head",
        "refs/pull/42/merge",
        "refs/merge-requests/7/head",
        "0123abc",
        "0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_well_formed_refs_pass(text: str) -> None:
    """Branch names, forge PR refs and commit ids are accepted as they are."""
    assert text == refs.checked_ref(text, field="head")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("--upload-pack=touch /tmp/pwned", id="option"),
        pytest.param("-h", id="short-option"),
        pytest.param("main..evil", id="range"),
        pytest.param("a//b", id="double-slash"),
        pytest.param("main.lock", id="lock"),
        pytest.param("x/.hidden", id="dot-component"),
        pytest.param("main@{1}", id="reflog"),
        pytest.param("main~1", id="expression"),
        pytest.param("HEAD^", id="parent"),
        pytest.param("refs/pull/x/head", id="pr-not-a-number"),
        pytest.param("refs/heads/main", id="other-full-ref"),
        pytest.param("refs/pull/1/head\n--foo", id="newline"),
        pytest.param("main branch", id="space"),
        pytest.param("feature/", id="trailing-slash"),
        pytest.param("", id="empty"),
    ],
)
def test_ill_formed_refs_are_refused_with_the_field_named(text: str) -> None:
    """Anything else, options first of all, is refused before git sees it."""
    with pytest.raises(git_source.SourceError, match=r"^head: .* is not a branch name"):
        refs.checked_ref(text, field="head")


def test_fetch_brings_forge_pr_refs_into_a_clone(forge: Forge, tmp_path: Path) -> None:
    """A fork's PR head, absent from the clone, is fetched by its forge ref and then named."""
    url = forge.repo.path.as_uri()
    clone = git_source.open_repository(url, state_dir=tmp_path / "state")
    with pytest.raises(git_source.SourceError):
        git_source.resolve(clone, rev="refs/pull/7/head")
    refs.fetch(clone, ["refs/pull/7/head", "refs/merge-requests/7/head", "main", forge.fork])
    loaded = repository.load_revision(clone, "refs/pull/7/head")
    assert f"pr-7@sha1:{forge.fork}" == loaded.revision
    assert forge.fork == clone.commit("refs/merge-requests/7/head").hexsha


def test_fetching_a_ref_the_forge_lacks_names_it(forge: Forge, tmp_path: Path) -> None:
    """A PR number the remote does not have is a MissingRefError naming the ref."""
    clone = git_source.open_repository(forge.repo.path.as_uri(), state_dir=tmp_path / "state")
    with pytest.raises(refs.MissingRefError, match=r"has no ref 'refs/pull/999/head'"):
        refs.fetch(clone, ["refs/pull/999/head"])


def test_fetch_refuses_other_full_refs(forge: Forge, tmp_path: Path) -> None:
    """Only forge PR refs, branches and commit ids are fetched: another full ref is refused."""
    clone = git_source.open_repository(forge.repo.path.as_uri(), state_dir=tmp_path / "state")
    before = sorted(str(r.path) for r in clone.refs)
    with pytest.raises(git_source.SourceError, match="not a ref this service fetches"):
        refs.fetch(clone, ["refs/keep-around/x"])
    assert before == sorted(str(r.path) for r in clone.refs)
