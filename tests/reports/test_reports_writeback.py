"""Write-back: report files committed to a reports branch of a real repository, and pushed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest
from reportfleet import NOW, REVISION

from controller.reports import commit_message, commit_reports, write_reports
from controller.reports.writeback import WritebackError
from controller.testing import PolicyRepo

BRANCH = "patchctl-reports"
MESSAGE = commit_message(REVISION, generated_at=NOW, paths=1)


def tree_files(repo: git.Repo, ref: str) -> dict[str, str]:
    commit = repo.commit(ref)
    return {
        str(blob.path): blob.data_stream.read().decode()
        for blob in commit.tree.traverse()
        if isinstance(blob, git.Blob)
    }


def bare_remote(path: Path) -> git.Repo:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)], check=True)
    return git.Repo(path)


def test_commit_creates_the_branch_and_leaves_the_policy_alone(policy_repo: PolicyRepo) -> None:
    """The policy branch, HEAD, the index and the working tree are as they were."""
    repo = policy_repo.repo
    main_before = repo.heads.main.commit.hexsha
    index_before = (policy_repo.path / ".git" / "index").read_bytes()
    result = commit_reports(
        policy_repo.path, files={"tenants/acme/compliance.md": "# acme\n"}, message=MESSAGE
    )
    assert result.commit == repo.heads[BRANCH].commit.hexsha
    assert {"tenants/acme/compliance.md": "# acme\n"} == tree_files(repo, BRANCH)
    assert (main_before, "main") == (repo.heads.main.commit.hexsha, repo.head.reference.name)
    assert index_before == (policy_repo.path / ".git" / "index").read_bytes()
    assert "" == repo.git.status("--porcelain", "--untracked-files=all")
    assert not (policy_repo.path / "tenants").exists()


def test_the_commit_names_the_policy_revision(policy_repo: PolicyRepo) -> None:
    """The subject and a trailer carry the revision the reports were written from."""
    commit_reports(policy_repo.path, files={"compliance.md": "x\n"}, message=MESSAGE)
    message = policy_repo.repo.heads[BRANCH].commit.message
    assert (
        f"reports: compliance for {REVISION} at 2026-12-07 06:00 UTC\n\n"
        "1 report file(s) written by patchctl.\n\n"
        f"Policy-Revision: {REVISION}\n"
        "Generated-At: 2026-12-07T06:00:00Z\n"
    ) == message
    assert ("patchctl", "patchctl") == (
        policy_repo.repo.heads[BRANCH].commit.author.name,
        policy_repo.repo.heads[BRANCH].commit.committer.name,
    )


def test_an_unchanged_report_commits_nothing(policy_repo: PolicyRepo) -> None:
    """Committing the same files again leaves the branch where it was."""
    files = {"compliance.md": "# same\n", "compliance.csv": "a,b\n"}
    first = commit_reports(policy_repo.path, files=files, message=MESSAGE)
    again = commit_reports(policy_repo.path, files=files, message=MESSAGE)
    assert (None, first.tree, False) == (again.commit, again.tree, again.changed)
    assert first.commit == policy_repo.repo.heads[BRANCH].commit.hexsha


def test_new_reports_build_on_the_previous_ones(policy_repo: PolicyRepo) -> None:
    """A second tenant's report joins the first one's; a changed file replaces its old text."""
    first = commit_reports(
        policy_repo.path, files={"tenants/a/compliance.md": "a1\n"}, message=MESSAGE
    )
    second = commit_reports(
        policy_repo.path,
        files={"tenants/b/compliance.md": "b1\n", "tenants/a/compliance.md": "a2\n"},
        message=MESSAGE,
    )
    assert first.commit == second.parent
    assert {"tenants/a/compliance.md": "a2\n", "tenants/b/compliance.md": "b1\n"} == tree_files(
        policy_repo.repo, BRANCH
    )


@pytest.mark.parametrize(
    ("branch", "policy_branch", "files", "message"),
    [
        ("main", None, {"r.md": "x"}, "it is checked out"),
        ("release", "release", {"r.md": "x"}, "it is the policy branch being reconciled"),
        ("bad..name", None, {"r.md": "x"}, "is not a valid branch name"),
        (BRANCH, None, {"../escape.md": "x"}, "is not a plain relative path"),
        (BRANCH, None, {".git/hooks/post-commit": "x"}, "is not a plain relative path"),
        (BRANCH, None, {"/etc/passwd": "x"}, "is not a plain relative path"),
    ],
    ids=["checked-out", "policy-branch", "bad-name", "parent-dir", "git-dir", "absolute"],
)
def test_commit_refuses_what_it_must_not_write(
    policy_repo: PolicyRepo,
    branch: str,
    policy_branch: str | None,
    files: dict[str, str],
    message: str,
) -> None:
    """The branch being reconciled, the checked-out branch and paths outside the tree."""
    before = {head.name: head.commit.hexsha for head in policy_repo.repo.heads}
    with pytest.raises(WritebackError, match=message):
        commit_reports(
            policy_repo.path,
            branch=branch,
            files=files,
            message=MESSAGE,
            policy_branch=policy_branch,
        )
    assert before == {head.name: head.commit.hexsha for head in policy_repo.repo.heads}


def test_push_sends_the_branch_to_the_remote(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """With a remote and `push`, the new commit is on the remote's reports branch."""
    remote = bare_remote(tmp_path / "remote.git")
    policy_repo.repo.create_remote("origin", str(remote.git_dir))
    result = commit_reports(
        policy_repo.path, files={"compliance.md": "1\n"}, message=MESSAGE, push=True
    )
    assert (True, result.commit) == (result.pushed, remote.heads[BRANCH].commit.hexsha)
    unchanged = commit_reports(
        policy_repo.path, files={"compliance.md": "1\n"}, message=MESSAGE, push=True
    )
    assert (None, False) == (unchanged.commit, unchanged.pushed)


def test_push_builds_on_what_another_writer_pushed(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """A reports branch moved on the remote is fetched and kept, not overwritten."""
    remote = bare_remote(tmp_path / "remote.git")
    policy_repo.repo.create_remote("origin", str(remote.git_dir))
    commit_reports(policy_repo.path, files={"a.md": "a\n"}, message=MESSAGE, push=True)
    other = PolicyRepo(tmp_path / "other")
    other.repo.create_remote("origin", str(remote.git_dir))
    commit_reports(other.path, files={"b.md": "b\n"}, message=MESSAGE, push=True)
    result = commit_reports(policy_repo.path, files={"c.md": "c\n"}, message=MESSAGE, push=True)
    assert remote.heads[BRANCH].commit.hexsha == result.commit
    assert {"a.md": "a\n", "b.md": "b\n", "c.md": "c\n"} == tree_files(remote, BRANCH)


def test_without_push_nothing_leaves_the_machine(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """`push=False` commits locally and leaves the remote untouched."""
    remote = bare_remote(tmp_path / "remote.git")
    policy_repo.repo.create_remote("origin", str(remote.git_dir))
    result = commit_reports(policy_repo.path, files={"a.md": "a\n"}, message=MESSAGE)
    assert (False, []) == (result.pushed, [h.name for h in remote.heads])


def test_a_url_is_committed_to_and_pushed(policy_repo: PolicyRepo, tmp_path: Path) -> None:
    """A repository given by URL gets the reports branch pushed; its default branch is refused."""
    remote = bare_remote(tmp_path / "remote.git")
    policy_repo.repo.git.push(str(remote.git_dir), "main:main")
    url = f"file://{remote.git_dir}"
    result = commit_reports(url, files={"compliance.md": "x\n"}, message=MESSAGE)
    assert (True, result.commit) == (result.pushed, remote.heads[BRANCH].commit.hexsha)
    with pytest.raises(WritebackError, match="it is the default branch"):
        commit_reports(url, branch="main", files={"compliance.md": "x\n"}, message=MESSAGE)


def test_write_reports_writes_files_under_the_directory(tmp_path: Path) -> None:
    """Folders are created; a path leaving the directory is refused before anything is written."""
    written = write_reports(tmp_path / "out", {"tenants/acme/compliance.md": "# acme\n"})
    assert [tmp_path / "out/tenants/acme/compliance.md"] == written
    assert "# acme\n" == written[0].read_text()
    with pytest.raises(WritebackError, match="is not a plain relative path"):
        write_reports(tmp_path / "out", {"../outside.md": "x"})
    assert not (tmp_path / "outside.md").exists()
