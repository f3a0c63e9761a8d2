"""Pull-request webhook payloads (GitHub, Gitea/Forgejo, GitLab) and the apply status a pass
earns: pure functions, table-driven."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.forges import events
from controller.forges.clients import CommitStatus, StatusState
from controller.forges.events import PullRequest
from controller.runtime.forge_publisher import APPLY_CONTEXT, apply_status
from controller.runtime.reconcile import Outcome, Verification

SHA = "a" * 40
OLD = "b" * 40


def github(action: str = "opened", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "head": {"sha": SHA, "ref": "bob/openssl"},
            "base": {"ref": "main"},
        },
        "repository": {"full_name": "acme/policies"},
    }
    payload["pull_request"].update(changes)
    return payload


def gitlab(action: str = "open") -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "project": {"id": 9, "path_with_namespace": "acme/policies"},
        "object_attributes": {
            "iid": 7,
            "action": action,
            "last_commit": {"id": SHA},
            "source_branch": "bob/openssl",
            "target_branch": "main",
        },
    }


GITHUB_PR = PullRequest(42, SHA, "bob/openssl", "main", "acme/policies")
GITLAB_MR = PullRequest(7, SHA, "bob/openssl", "main", "acme/policies", gitlab=True)


@pytest.mark.parametrize(
    ("headers", "payload", "expected"),
    [
        pytest.param({"x-github-event": "pull_request"}, github(), GITHUB_PR, id="github-opened"),
        pytest.param(
            {"x-github-event": "pull_request"}, github("synchronize"), GITHUB_PR, id="github-push"
        ),
        pytest.param(
            {"x-gitea-event": "pull_request", "x-github-event": "pull_request"},
            github("synchronized"),
            GITHUB_PR,
            id="gitea-push",
        ),
        pytest.param(
            {"x-gitlab-event": "Merge Request Hook"}, gitlab("update"), GITLAB_MR, id="gitlab"
        ),
        pytest.param({"x-github-event": "pull_request"}, github("closed"), None, id="closed"),
        pytest.param({"x-gitlab-event": "Merge Request Hook"}, gitlab("merge"), None, id="merged"),
        pytest.param({"x-github-event": "push"}, github(), None, id="a-push-event"),
        pytest.param({}, github(), None, id="no-event-header"),
        pytest.param(
            {"x-github-event": "pull_request"},
            github(head={"sha": "not-a-sha", "ref": "x"}),
            None,
            id="bad-sha",
        ),
        pytest.param(
            {"x-github-event": "pull_request"},
            github(base={"ref": "--upload-pack=evil"}),
            None,
            id="option-as-branch",
        ),
        pytest.param(
            {"x-github-event": "pull_request"},
            github(number=True),
            None,
            id="number-not-an-int",
        ),
    ],
)
def test_pull_request_events(
    headers: dict[str, str], payload: dict[str, Any], expected: PullRequest | None
) -> None:
    """Only an opened, pushed or reopened PR of the documented shape is a PullRequest."""
    assert expected == events.pull_request(headers, json.dumps(payload).encode())


def test_a_body_that_is_not_json_is_no_pull_request() -> None:
    """A verified call with a body that is not JSON announces nothing."""
    assert None is events.pull_request({"x-github-event": "pull_request"}, b"\xff{")


@pytest.mark.parametrize(
    ("pr", "label", "ref"),
    [
        pytest.param(GITHUB_PR, "pr-42", "refs/pull/42/head", id="github"),
        pytest.param(GITLAB_MR, "mr-7", "refs/merge-requests/7/head", id="gitlab"),
    ],
)
def test_labels_and_forge_refs(pr: PullRequest, label: str, ref: str) -> None:
    """A PR is named and fetched the way its forge publishes it."""
    assert (label, ref) == (pr.label, pr.forge_ref)


def outcome(result: str, *, verified: Verification | None = None) -> Outcome:
    return Outcome(
        result=result,
        applied_revision=f"main@sha1:{OLD if result == 'policy-invalid' else SHA}",
        attempted_revision=f"main@sha1:{SHA}",
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        duration_ms=5,
        errors=("a.yaml:1:1: spec: bad", "b.yaml:2:1: spec: bad")
        if result == "policy-invalid"
        else (),
        verified=verified,
    )


REJECTED = Verification(
    "False",
    "ApprovalRejected",
    "1 approving object(s) ...",
    ("Approval/acme/x: mallory@evil.example may not approve for acme",),
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            outcome("applied"),
            (SHA, CommitStatus(StatusState.SUCCESS, APPLY_CONTEXT, "applied by patchctl")),
            id="applied",
        ),
        pytest.param(
            outcome("applied", verified=REJECTED),
            (
                SHA,
                CommitStatus(
                    StatusState.FAILURE,
                    APPLY_CONTEXT,
                    "not applied: Approval/acme/x: mallory@evil.example may not approve for acme",
                ),
            ),
            id="refused-by-the-access-policy",
        ),
        pytest.param(
            outcome("policy-invalid"),
            (
                SHA,
                CommitStatus(
                    StatusState.FAILURE,
                    APPLY_CONTEXT,
                    f"does not validate (2 error(s)); still enforcing main@{OLD[:12]}",
                ),
            ),
            id="invalid",
        ),
        pytest.param(outcome("source-error"), None, id="source-unreachable"),
    ],
)
def test_the_apply_status_of_a_pass(
    given: Outcome, expected: tuple[str, CommitStatus] | None
) -> None:
    """Applied: success; refused approvals: failure with the reason; invalid: failure."""
    assert expected == apply_status(given)
