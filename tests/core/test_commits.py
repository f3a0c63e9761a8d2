"""Commit facts as values: pull requests told by forge messages, trailers, signers, JSON form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core.commits import (
    UNSIGNED,
    CommitFacts,
    Person,
    PullRequest,
    PullRequestStyle,
    Signature,
    SignatureStatus,
    Trailer,
    parse_pull_request,
    parse_trailers,
)

ALICE = Person("Alice Admin", "alice@example.com")
BOB = Person("Bob Reviewer", "bob@example.com")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            "Merge pull request #12 from alice/kb-approve\n\nApprove KB5034127",
            PullRequest(12, PullRequestStyle.GITHUB_MERGE),
            id="github-merge",
        ),
        pytest.param(
            "Approve KB5034127 (#13)\n\n* first\n* second",
            PullRequest(13, PullRequestStyle.GITHUB_SQUASH),
            id="github-squash",
        ),
        pytest.param(
            "Merge branch 'kb' into 'main'\n\nApprove\n\nSee merge request ops/patching!34\n",
            PullRequest(34, PullRequestStyle.GITLAB, "ops/patching"),
            id="gitlab",
        ),
        pytest.param(
            "Merge pull request 'Approve KB (#9)' (#14) from kb into main",
            PullRequest(14, PullRequestStyle.GITEA),
            id="gitea-before-squash",
        ),
        pytest.param(
            "Merged in kb-approve (pull request #15)",
            PullRequest(15, PullRequestStyle.BITBUCKET),
            id="bitbucket",
        ),
        pytest.param(
            "Merged PR 16: Approve KB5034127",
            PullRequest(16, PullRequestStyle.AZURE_DEVOPS),
            id="azure-devops",
        ),
        pytest.param("Approve KB5034127", None, id="ordinary"),
        pytest.param("Fix issue #7 in the window", None, id="hash-not-at-the-end"),
    ],
)
def test_pull_requests_are_told_by_the_message_a_forge_writes(
    message: str, expected: PullRequest | None
) -> None:
    """Each forge's merge or squash message names its request; an ordinary commit none."""
    assert expected == parse_pull_request(message)


@pytest.mark.parametrize(
    ("request_", "ref"),
    [
        (PullRequest(12, PullRequestStyle.GITHUB_MERGE), "#12"),
        (PullRequest(34, PullRequestStyle.GITLAB, "ops/patching"), "ops/patching!34"),
    ],
    ids=["github", "gitlab"],
)
def test_a_pull_request_prints_as_its_forge_does(request_: PullRequest, ref: str) -> None:
    """GitLab's `group/project!34`, everyone else's `#12`."""
    assert ref == request_.ref


def test_trailers_are_read_from_git_s_separated_output() -> None:
    """Key-value lines become trailers; lines whose key has a space are not trailers."""
    text = "Reviewed-by: Bob Reviewer <bob@example.com>\x1fNot a trailer: x\x1fTicket: OPS-1"
    assert (
        Trailer("Reviewed-by", "Bob Reviewer <bob@example.com>"),
        Trailer("Ticket", "OPS-1"),
    ) == parse_trailers(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bob Reviewer <bob@example.com>", BOB),
        ("  <bob@example.com> ", Person("", "bob@example.com")),
        ("Bob Reviewer", None),
    ],
)
def test_people_are_parsed_from_name_and_angle_bracketed_email(
    text: str, expected: Person | None
) -> None:
    """`Name <email>` is a person; text without an email is not."""
    assert expected == Person.parse(text)


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        (None, None),
        ("Alice Admin <Alice@Example.com>", "alice@example.com"),
        ("alice@example.com", "alice@example.com"),
        ("deploy-key", None),
    ],
)
def test_the_signer_email_comes_from_a_principal_or_a_user_id(
    signer: str | None, expected: str | None
) -> None:
    """An SSH principal is an email; a GPG user id holds one; both compare lower-case."""
    assert expected == Signature(SignatureStatus.GOOD, signer=signer).signer_email


def test_fingerprints_include_the_primary_key_of_a_subkey() -> None:
    """A GPG subkey's signature is known by both fingerprints; unsigned has none."""
    signed = Signature(SignatureStatus.GOOD, key="SUB", primary_key="PRIMARY")
    assert (frozenset({"SUB", "PRIMARY"}), frozenset(), True, False) == (
        signed.fingerprints(),
        UNSIGNED.fingerprints(),
        signed.is_good,
        UNSIGNED.is_good,
    )


FACTS = CommitFacts(
    sha="c" * 40,
    parents=("a" * 40, "b" * 40),
    author=ALICE,
    committer=Person("GitHub", "noreply@github.com"),
    authored_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    committed_at=datetime(2026, 11, 20, 9, 5, tzinfo=UTC),
    message="Merge pull request #12 from alice/kb\n\nReviewed-by: Bob Reviewer <bob@example.com>",
    pull_request=PullRequest(12, PullRequestStyle.GITHUB_MERGE),
    trailers=(
        Trailer("reviewed-by", "Bob Reviewer <bob@example.com>"),
        Trailer("Ticket", "OPS-1"),
    ),
    signature=Signature(SignatureStatus.GOOD, "SHA256:abc", None, "alice@example.com"),
    merged_head_author=ALICE,
)


def test_commit_facts_survive_their_stored_form() -> None:
    """`from_dict(to_dict(facts))` gives the facts back; the stored form names the request."""
    stored = FACTS.to_dict()
    assert (FACTS, "#12", "Merge pull request #12 from alice/kb") == (
        CommitFacts.from_dict(stored),
        stored["pullRequest"]["ref"],
        stored["subject"],
    )


def test_merges_and_reviewers_are_read_from_the_facts() -> None:
    """Two parents make a merge; trailer keys match whatever their case."""
    assert (True, (BOB,), ()) == (
        FACTS.is_merge,
        FACTS.trailer_people("Reviewed-by", "Approved-by"),
        FACTS.trailer_people("Co-authored-by"),
    )
