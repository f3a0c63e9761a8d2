"""What a running `patchctl serve` enforces: only the configured branch, read from git objects,
and only the approvals the server's access policy lets through (issue 11, items 1 and 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest

from controller.testing import PolicyRepo, Serve

pytestmark = pytest.mark.slow

MALLORY = git.Actor("Mallory Outsider", "mallory@evil.example")
WIP_WHITELIST = """\
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: unreviewed-everything, tenant: acme/retail}
spec:
  targets: {groups: [linux-web]}
  patches: [{id: USN-7999-1}]
"""
ROGUE_APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: rogue-kernel, tenant: acme/retail}
spec:
  patches: [USN-7200-1]
  targets: {groups: [linux-web]}
  reason: nobody reviewed this
"""
ACCESS = """\
[access]
require-signed = false

[access.tenants."*"]
approvers = ["alice@example.com"]
"""


def runs_after(serve: Serve, token: str, moment: datetime) -> list[dict[str, Any]]:
    """The reconcile runs that started after `moment`."""
    runs = serve.get("/api/v1/status", token)["reconcileRuns"]
    return [r for r in runs if datetime.fromisoformat(r["startedAt"]) > moment]


def applied(serve: Serve, token: str) -> str | None:
    source: dict[str, Any] = serve.get("/api/v1/status", token)["source"]
    return source.get("lastAppliedRevision")


@pytest.fixture
def repo(tmp_path: Path) -> PolicyRepo:
    policy = PolicyRepo(tmp_path / "repo")
    policy.copy_example()
    policy.commit("the example repository")
    return policy


def test_serve_never_applies_the_checked_out_branch(
    repo: PolicyRepo, database_url: str, tmp_path: Path
) -> None:
    """A commit on a checked-out `wip` branch is neither applied nor recorded in the trail."""
    main_sha = repo.repo.head.commit.hexsha
    serve = Serve(database_url=database_url, state_dir=tmp_path / "state")
    reader = serve.token("read", "acme")
    serve.start("--repo", str(repo.path), "--interval", "1s")
    try:
        serve.wait_for("the first pass", lambda: applied(serve, reader))
        repo.repo.git.checkout("-b", "wip")
        repo.write("policies/whitelists/unreviewed.yaml", WIP_WHITELIST)
        wip_sha = repo.commit("whitelist everything, unreviewed")
        committed = datetime.now(tz=UTC)
        serve.wait_for(
            "two passes after the wip commit",
            lambda: len(runs_after(serve, reader, committed)) >= 2,
        )
        status = serve.get("/api/v1/status", reader)
        trail = serve.get("/api/v1/audit", reader)
    finally:
        logs = serve.stop()
    assert f"main@sha1:{main_sha}" == status["source"]["lastAppliedRevision"]
    assert f"main@sha1:{main_sha}" == status["source"]["lastAttemptedRevision"]
    assert wip_sha not in str(trail)
    assert "unreviewed-everything" not in str(trail)
    assert "wip@" not in logs


def test_serve_judges_approvals_by_the_access_policy(
    repo: PolicyRepo, database_url: str, tmp_path: Path
) -> None:
    """An approval merged by someone the [access] table does not allow is rejected and alerted
    while the service runs, as `patchctl reconcile` would."""
    config = tmp_path / "patchctl.toml"
    config.write_text(ACCESS, encoding="utf-8")
    serve = Serve(database_url=database_url, state_dir=tmp_path / "state")
    reader = serve.token("read", "acme")
    serve.start("--repo", str(repo.path), "--interval", "1s", "--access-policy", str(config))
    try:
        serve.wait_for("the first pass", lambda: applied(serve, reader))
        repo.write("policies/approvals/rogue.yaml", ROGUE_APPROVAL)
        rogue = repo.commit("approve the kernel", author=MALLORY)
        serve.wait_for("the rogue commit applied", lambda: rogue in str(applied(serve, reader)))
        rejected = serve.wait_for(
            "the ApprovalRejected event",
            lambda: [
                e
                for e in serve.get("/api/v1/audit", reader)["events"]
                if e["type"] == "ApprovalRejected"
            ],
        )
        alerts = serve.wait_for(
            "the ApprovalRejected alert",
            lambda: [
                a
                for a in serve.get("/api/v1/alerts", reader)["alerts"]
                if a["kind"] == "ApprovalRejected"
            ],
        )
        status = serve.get("/api/v1/status", reader)
    finally:
        serve.stop()
    verified = next(c for c in status["conditions"] if c["type"] == "SourceVerified")
    assert [(rogue, "Approval/acme/retail/rogue-kernel")] == [
        (e["details"]["commit"]["sha"], e["object"]) for e in rejected
    ]
    assert "may not approve" in rejected[0]["details"]["verdict"]["reason"]
    assert 1 == len(alerts)
    assert "False" == verified["status"]
