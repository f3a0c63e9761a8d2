"""`patchctl report` as a user runs it: a real process, a real store, the example repository."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from reportfleet import NOW, build_fleet

from controller.store import open_store, status
from controller.store.database import Store
from controller.testing import PolicyRepo, run_cli

PATCHCTL = [sys.executable, "-m", "controller.cli"]


@pytest.fixture
def applied(example_repo: PolicyRepo, tmp_path: Path) -> tuple[PolicyRepo, str, str]:
    """The example repository, and a store holding the fleet with its head as the applied revision."""
    url = f"sqlite:///{tmp_path}/state.db"
    store: Store = open_store(url)
    build_fleet(store)
    revision = f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    with store.write() as conn:
        status.set_status(conn, "source", {"lastAppliedRevision": revision}, now=NOW)
    store.close()
    return example_repo, url, revision


def test_report_writes_every_format_stamped_with_the_applied_revision(
    applied: tuple[PolicyRepo, str, str], tmp_path: Path
) -> None:
    """Four files for the tenant; pending approvals are planned against the applied revision."""
    repo, url, revision = applied
    out = tmp_path / "out"
    result = run_cli(
        "report",
        "--repo",
        str(repo.path),
        "--db",
        url,
        "--tenant",
        "acme",
        "--out",
        str(out),
        "--now",
        "2026-12-07T06:00Z",
        "--json",
        cwd=tmp_path,
    )
    assert (0, "") == (result.exit_code, result.stderr)
    summary = json.loads(result.stdout)
    expected = [f"tenants/acme/compliance.{ext}" for ext in ("csv", "html", "json", "md")]
    assert (revision, expected, None) == (summary["revision"], summary["files"], summary["commit"])
    document = json.loads((out / "tenants/acme/compliance.json").read_text())
    assert (revision, "2026-12-07T06:00:00Z", []) == (
        document["revision"],
        document["generatedAt"],
        document["pendingApprovals"],
    )
    assert f"Policy revision `{revision}`" in (out / "tenants/acme/compliance.md").read_text()


def test_write_back_commits_once_and_then_finds_nothing_new(
    applied: tuple[PolicyRepo, str, str], tmp_path: Path
) -> None:
    """The reports branch gets a commit; the same report again commits nothing."""
    repo, url, _ = applied
    main = repo.repo.heads.main.commit.hexsha
    args = ("report", "--repo", str(repo.path), "--db", url, "--format", "markdown,csv")
    first = run_cli(*args, "--write-back", "--now", "2026-12-07T06:00Z", cwd=tmp_path)
    second = run_cli(*args, "--write-back", "--now", "2026-12-07T06:00Z", cwd=tmp_path)
    tip = repo.repo.heads["patchctl-reports"].commit
    assert (0, f"patchctl-reports: committed {tip.hexsha[:12]}\n") == (
        first.exit_code,
        first.stdout,
    )
    assert (0, "patchctl-reports: reports unchanged, nothing committed\n") == (
        second.exit_code,
        second.stdout,
    )
    assert ["compliance.csv", "compliance.md"] == sorted(b.path for b in tip.tree.blobs)
    assert main == repo.repo.heads.main.commit.hexsha


def test_write_back_to_the_policy_branch_is_refused(
    applied: tuple[PolicyRepo, str, str], tmp_path: Path
) -> None:
    """Exit 2 and a message naming the reason, before anything is collected or written."""
    repo, url, _ = applied
    main = repo.repo.heads.main.commit.hexsha
    result = run_cli(
        "report",
        "--repo",
        str(repo.path),
        "--db",
        url,
        "--write-back",
        "--reports-branch",
        "main",
        cwd=tmp_path,
    )
    assert 2 == result.exit_code
    assert (
        "patchctl: refusing to write reports to 'main': it is the policy branch being "
        "reconciled; use a separate reports branch such as patchctl-reports\n"
    ) == result.stderr
    assert main == repo.repo.heads.main.commit.hexsha
    store = open_store(url)
    with store.read() as conn:
        keys = sorted(status.get_status(conn))
    store.close()
    assert ["source", "trend:acme"] == keys
