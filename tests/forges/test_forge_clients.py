"""The forge clients against the forges' fakes: lists walked page by page as each forge pages them.

Real parts: the HTTP clients of `controller.forges.clients` over real sockets. Faked: only the
far side, each forge's REST API, by `controller.testing.FakeForge` (a local HTTP server built
from the forge's public API reference).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.forges.clients import MARKER, client_for
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
