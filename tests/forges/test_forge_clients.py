"""The forge clients against the forges' fakes: lists walked page by page as each forge pages
them, and a proposal's labels and reviewers given in each forge's own terms.

Real parts: the HTTP clients of `controller.forges.clients` over real sockets. Faked: only the
far side, each forge's REST API, by `controller.testing.FakeForge` (a local HTTP server built
from the forge's public API reference).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from controller.forges.clients import MARKER, NEW_LABEL_COLOR, PullRequestProposal, client_for
from controller.forges.settings import ForgeKind, ForgeSettings
from controller.testing import FakeForge

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOKEN = "forge-token-for-tests"  # noqa: S105 - the fake forge's token
PR = 7


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeForge]:
    """A started fake of the forge named by the test's `fake` parameter."""
    forge = FakeForge(kind=request.param, token=TOKEN)
    forge.start()
    yield forge
    forge.stop()


@pytest.fixture
def client(fake: FakeForge) -> Iterator[Any]:
    """patchctl's client of `fake`, configured as an operator would."""
    settings = ForgeSettings(
        kind=ForgeKind(fake.kind), url=fake.url, repository=fake.repository, token=TOKEN
    )
    forge = client_for(settings, clock=lambda: NOW)
    yield forge
    forge.close()


@pytest.mark.parametrize("fake", ["github", "gitlab", "gitea"], indirect=True)
def test_the_plan_comment_past_the_first_page_is_edited_not_written_again(
    fake: FakeForge, client: Any
) -> None:
    """Gitea answers 50 comments a page when 100 are asked: the plan comment is found on page 2."""
    for n in range(120):
        fake.add_comment(PR, f"comment {n}")
    fake.add_comment(PR, f"{MARKER}\nthe old plan", author="patchctl-bot")

    assert "edited" == client.upsert_comment(PR, "the new plan")
    assert [f"{MARKER}\nthe new plan"] == [
        c["body"] for c in fake.comments[PR] if c["body"].startswith(MARKER)
    ]


@pytest.mark.parametrize("fake", ["github", "gitea"], indirect=True)
def test_without_a_plan_comment_one_is_written(fake: FakeForge, client: Any) -> None:
    """A full last page is followed by an empty one; then the comment is created once."""
    for n in range(100):
        fake.add_comment(PR, f"comment {n}")

    assert "created" == client.upsert_comment(PR, "the plan")
    assert 101 == len(fake.comments[PR])


def proposal(
    head: str, *, labels: tuple[str, ...] = (), reviewers: tuple[str, ...] = ()
) -> PullRequestProposal:
    return PullRequestProposal(
        head=head,
        base="main",
        title=f"Approve {head}",
        body="the plan",
        labels=labels,
        reviewers=reviewers,
    )


def label_names(pull: dict[str, Any]) -> list[str]:
    return [label["name"] for label in pull["labels"]]


@pytest.mark.parametrize("fake", ["gitea"], indirect=True)
def test_gitea_gets_the_labels_by_id_found_on_any_page(fake: FakeForge, client: Any) -> None:
    """Labels the repository has are set by their ids, the 61st found on the list's second page."""
    for n in range(60):
        fake.add_label(f"area/{n}")
    patches = fake.add_label("patches")
    security = fake.add_label("Security")

    number, action = client.upsert_pull_request(
        proposal("patchctl/proposals/a", labels=("patches", "security"))
    )

    assert (1, "created") == (number, action)
    assert ["patches", "Security"] == label_names(fake.pulls[1])
    assert [{"labels": [patches, security]}] == [
        r.body for r in fake.calls("POST", r"/issues/1/labels$")
    ]
    assert [] == fake.calls("POST", r"/repos/acme/policies/labels$")


@pytest.mark.parametrize("fake", ["gitea"], indirect=True)
def test_gitea_creates_a_missing_label_once_then_uses_it(fake: FakeForge, client: Any) -> None:
    """A label the repository lacks is created (a neutral colour) and found by the next pull."""
    fake.add_label("patches")

    client.upsert_pull_request(proposal("patchctl/proposals/a", labels=("patches", "needs review")))
    client.upsert_pull_request(proposal("patchctl/proposals/b", labels=("needs review",)))

    created = fake.calls("POST", r"/repos/acme/policies/labels$")
    assert [{"name": "needs review", "color": NEW_LABEL_COLOR}] == [r.body for r in created]
    assert ["patches", "needs review"] == label_names(fake.pulls[1])
    assert ["needs review"] == label_names(fake.pulls[2])
    assert fake.pulls[1]["labels"][1]["id"] == fake.pulls[2]["labels"][0]["id"]


@pytest.mark.parametrize("fake", ["gitea"], indirect=True)
def test_gitea_refuses_label_names_where_ids_belong(fake: FakeForge) -> None:
    """The fake answers as Gitea's IssueLabelsOption documents: ids, not names (422)."""
    fake.pulls[1] = {"number": 1, "state": "open", "head": {"ref": "x"}, "labels": []}
    fake.add_label("patches")
    answer = httpx.post(
        f"{fake.url}/repos/{fake.repository}/issues/1/labels",
        json={"labels": ["patches"]},
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert (422, []) == (answer.status_code, fake.pulls[1]["labels"])


@pytest.mark.parametrize("fake", ["gitlab"], indirect=True)
def test_gitlab_asks_the_reviewers_by_their_user_ids(fake: FakeForge, client: Any) -> None:
    """Each reviewer name is looked up in /users; the merge request is opened with their ids."""
    fake.users.update({"alice": 11, "bob": 12})

    client.upsert_pull_request(proposal("patchctl/proposals/a", reviewers=("alice", "Bob")))

    [opened] = fake.calls("POST", r"/merge_requests$")
    assert [11, 12] == opened.body["reviewer_ids"]
    assert ["alice", "bob"] == [user["username"] for user in fake.pulls[1]["reviewers"]]
    assert [["alice"], ["Bob"]] == [r.query["username"] for r in fake.calls("GET", r"/users$")]


@pytest.mark.parametrize(
    ("reviewers", "reviewer_ids"),
    [
        pytest.param(("alice", "mallory"), [11], id="one-known"),
        pytest.param(("mallory",), None, id="none-known"),
    ],
)
@pytest.mark.parametrize("fake", ["gitlab"], indirect=True)
def test_gitlab_leaves_out_an_unknown_reviewer_with_a_warning(
    fake: FakeForge, client: Any, reviewers: tuple[str, ...], reviewer_ids: list[int] | None
) -> None:
    """A name GitLab has no user for is not asked, a warning names it, the request still opens."""
    fake.users["alice"] = 11

    with capture_logs() as logs:
        result = client.upsert_pull_request(proposal("patchctl/proposals/a", reviewers=reviewers))

    assert (1, "created") == result
    [opened] = fake.calls("POST", r"/merge_requests$")
    assert reviewer_ids == opened.body.get("reviewer_ids")
    assert [
        {
            "event": "reviewers unknown to the forge not requested",
            "log_level": "warning",
            "forge": fake.url.split("/")[2],
            "merge_request": 1,
            "reviewers": ["mallory"],
        }
    ] == logs


@pytest.mark.parametrize("fake", ["gitlab"], indirect=True)
def test_gitlab_opens_the_request_when_it_refuses_to_look_up_users(
    fake: FakeForge, client: Any
) -> None:
    """An instance that refuses its user list (403) still gets the merge request, with no
    reviewers and a warning naming them: a reviewer never keeps a proposal from opening."""
    fake.users["alice"] = 11
    fake.users_forbidden = True

    with capture_logs() as logs:
        result = client.upsert_pull_request(proposal("patchctl/proposals/a", reviewers=("alice",)))

    assert (1, "created") == result
    [opened] = fake.calls("POST", r"/merge_requests$")
    assert "reviewer_ids" not in opened.body
    assert [["alice"]] == [entry["reviewers"] for entry in logs]
