"""Status on the forge (issue 15.3): the plan of a pull request as one comment edited in place,
commit statuses on its heads, and a status on every revision the controller applies or refuses.

Real parts: the app over httpx's ASGI transport with the loop running, a real git repository,
SQLite, and the real HTTP clients. Faked: only the far side, each forge's REST API, by a real
local HTTP server built from its public API reference (`tests/forgefakes.py`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import httpx
import pytest

from controller.core.retries import RetryPolicy
from controller.forges.clients import MARKER
from controller.forges.settings import ForgeKind, ForgeSettings
from controller.runtime import access
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, open_store
from controller.store import status as status_store
from controller.testing import FakeForge, PolicyRepo, Serve

pytestmark = pytest.mark.anyio

SECRET = "hook-secret-for-tests"  # noqa: S105 - a test fixture
TOKEN = "forge-token-0123456789abcdef"  # noqa: S105 - a test fixture
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PR = 7
MALLORY = git.Actor("Mallory Outsider", "mallory@evil.example")
FAST_RETRY = RetryPolicy(
    max_attempts=3,
    first_delay=timedelta(milliseconds=20),
    max_delay=timedelta(milliseconds=50),
    max_retry_after=timedelta(milliseconds=50),
)
APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: 2026-12-kernel, tenant: acme/retail}}
spec:
  patches: [{patches}]
  targets: {{groups: [linux-web]}}
  reason: December kernel fixes
  ticket: CHG-4900
"""
ONE_UNKNOWN = "1 object(s) change, 1 warning(s), 0 device(s) affected"
BROKEN = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: broken, tenant: acme/retail}
spec:
  patches: [USN-7200-1]
  reason: no targets
  colour: blue
"""


@dataclass
class Service:
    client: httpx.AsyncClient
    controller: Controller
    store: Store
    repo: PolicyRepo
    fake: FakeForge

    def idle(self) -> None:
        assert self.controller.forge is not None
        assert self.controller.forge.wait_idle(30), "the forge queue did not empty"

    def wait_for(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if found := check():
                return found
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}")

    def pass_now(self) -> None:
        before = self.controller.loop.passes
        self.controller.trigger("test")
        self.wait_for("a pass", lambda: self.controller.loop.passes > before)
        assert self.controller.loop.wait_idle(30)


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeForge]:
    forge = FakeForge(kind=getattr(request, "param", "github"), token=TOKEN)
    forge.start()
    yield forge
    forge.stop()


def start_service(
    repo: PolicyRepo, fake: FakeForge, tmp_path: Path, *, policy: access.AccessPolicy | None = None
) -> tuple[Controller, Store, Any]:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
        access=policy,
    )
    forge = ForgeSettings(
        kind=ForgeKind(fake.kind), url=fake.url, repository=fake.repository, token=TOKEN
    )
    options = ServiceOptions(
        interval=timedelta(hours=1),
        jitter=0.0,
        watch_branch=False,
        notify=False,
        feeds=False,
        scheduled_reports=False,
        forge=forge,
    )
    controller = Controller(reconciler, options)
    assert controller.forge is not None
    controller.forge.retry = FAST_RETRY
    app = create_app(store, Settings(clock=lambda: NOW, webhook_secret=SECRET), controller)
    return controller, store, app


@pytest.fixture
async def service(
    example_repo: PolicyRepo, fake: FakeForge, tmp_path: Path
) -> AsyncIterator[Service]:
    controller, store, app = start_service(example_repo, fake, tmp_path)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        assert controller.loop.wait_idle(30)
        service = Service(client, controller, store, example_repo, fake)
        # the first pass's status on main, then a clean record for the test
        service.wait_for("the first apply status", lambda: statuses(fake, "patchctl/apply"))
        service.idle()
        fake.requests.clear()
        fake.statuses.clear()
        yield service
    store.close()


def hook(kind: str, *, action: str, sha: str, number: int = PR) -> tuple[bytes, dict[str, str]]:
    """A pull-request webhook call as the forge sends it (documented payload and headers)."""
    if kind == "gitlab":
        payload: dict[str, Any] = {
            "object_kind": "merge_request",
            "project": {"id": 42, "path_with_namespace": "acme/policies"},
            "object_attributes": {
                "iid": number,
                "action": {"opened": "open", "synchronize": "update"}.get(action, action),
                "last_commit": {"id": sha},
                "source_branch": "kernel",
                "target_branch": "main",
            },
        }
        body = json.dumps(payload).encode()
        return body, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": SECRET}
    payload = {
        "action": "synchronized" if kind == "gitea" and action == "synchronize" else action,
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": sha, "ref": "kernel"},
            "base": {"ref": "main"},
        },
        "repository": {"full_name": "acme/policies"},
    }
    body = json.dumps(payload).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if kind == "gitea":
        return body, {"X-Gitea-Event": "pull_request", "X-Gitea-Signature": digest}
    return body, {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": f"sha256={digest}"}


async def send(service: Service, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    answer = await service.client.post(
        "/api/v1/hooks/git", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert 202 == answer.status_code, answer.text
    found: dict[str, Any] = answer.json()
    return found


def push_to_branch(repo: PolicyRepo, text: str, *, branch: str = "kernel") -> str:
    """Commit `text` as the PR's approval on `branch`, leaving main checked out."""
    repo.repo.git.checkout("-B", branch, *([] if branch in repo.repo.heads else ["main"]))
    repo.write("policies/approvals/2026-12-kernel.yaml", text)
    sha = repo.commit(f"approve on {branch}")
    repo.repo.git.checkout("main")
    return sha


def statuses(fake: FakeForge, context: str) -> list[tuple[str, str, str]]:
    return [
        (s["sha"], s["state"], s["description"]) for s in fake.statuses if s["context"] == context
    ]


@pytest.mark.parametrize("fake", ["github", "gitlab", "gitea"], indirect=True)
async def test_one_plan_comment_edited_in_place_and_statuses_on_each_head(
    service: Service, fake: FakeForge
) -> None:
    """Two pushes to a PR give one comment (created, then edited, a human's comment untouched),
    a success status on each head, and after the merge a success status on the applied tip."""
    fake.add_comment(PR, "LGTM, but check the ticket")
    first = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    answer = await send(service, *hook(fake.kind, action="opened", sha=first))
    prefix = "mr" if fake.kind == "gitlab" else "pr"
    assert {"pullRequest": f"{prefix}-{PR}", "planQueued": True, "triggered": False} == {
        k: answer[k] for k in ("pullRequest", "planQueued", "triggered")
    }
    service.idle()
    [human, ours] = fake.comments[PR]
    assert "LGTM, but check the ticket" == human["body"]
    assert ours["body"].startswith(MARKER + "\n### patchctl plan: `main@sha1:")
    assert f"`{prefix}-{PR}@sha1:{first}`" in ours["body"]
    # the store has no catalogue yet: every patch id is unknown, which the plan warns about
    assert "approves **USN-7200-1** (not in the catalogue)" in ours["body"]
    assert [(first, "success", ONE_UNKNOWN)] == statuses(fake, "patchctl/plan")

    second = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1, USN-7201-1"))
    await send(service, *hook(fake.kind, action="synchronize", sha=second))
    service.idle()
    assert 2 == len(fake.comments[PR])
    edited = fake.comments[PR][1]
    assert ours["id"] == edited["id"]
    assert f"`{prefix}-{PR}@sha1:{second}`" in edited["body"]
    assert "approves **USN-7201-1**" in edited["body"]
    create = "POST"
    edit = "PUT" if fake.kind == "gitlab" else "PATCH"
    comments = r"/(comments|notes)(/[0-9]+)?$"
    assert (1, 1) == (len(fake.calls(create, comments)), len(fake.calls(edit, comments)))
    assert [
        (first, "success", ONE_UNKNOWN),
        (second, "success", ONE_UNKNOWN),  # one warning lists both unknown ids
    ] == statuses(fake, "patchctl/plan")

    service.repo.repo.git.merge("--ff-only", "kernel")
    service.pass_now()
    service.wait_for("the apply status", lambda: statuses(fake, "patchctl/apply"))
    service.idle()
    assert [(second, "success", "applied by patchctl")] == statuses(fake, "patchctl/apply")


async def test_the_same_head_again_edits_nothing(service: Service, fake: FakeForge) -> None:
    """A webhook redelivered for the same head finds the comment unchanged: no edit, and the
    same status is not sent twice."""
    head = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    await send(service, *hook("github", action="opened", sha=head))
    service.idle()
    await send(service, *hook("github", action="reopened", sha=head))
    service.idle()
    assert 1 == len(fake.comments[PR])
    assert [] == fake.calls("PATCH", r"/comments/[0-9]+$")
    assert 1 == len(statuses(fake, "patchctl/plan"))


async def test_a_head_that_does_not_validate_fails_with_its_errors(
    service: Service, fake: FakeForge
) -> None:
    """A head with an invalid file gets a failure status and a comment naming file and field."""
    head = push_to_branch(service.repo, BROKEN)
    await send(service, *hook("github", action="opened", sha=head))
    service.idle()
    [comment] = fake.comments[PR]
    assert "does not validate" in comment["body"]
    assert "policies/approvals/2026-12-kernel.yaml:" in comment["body"]
    assert "colour" in comment["body"]
    [(sha, state, description)] = statuses(fake, "patchctl/plan")
    assert (head, "failure") == (sha, state)
    assert description.startswith("does not validate: ")


async def test_the_webhook_answers_before_the_forge_does(service: Service, fake: FakeForge) -> None:
    """With the forge holding every answer, the webhook is answered and the loop still runs a
    pass; the comment arrives once the forge answers."""
    head = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    fake.gate.clear()
    await send(service, *hook("github", action="opened", sha=head))
    service.pass_now()
    assert [] == [r for r in fake.requests if r.answered]
    fake.gate.set()
    service.idle()
    assert 1 == len(fake.comments[PR])


async def test_a_forge_that_fails_for_a_while_is_tried_again(
    service: Service, fake: FakeForge
) -> None:
    """Two 503 answers with Retry-After are retried (controller.core.retries); then the
    comment and the status arrive."""
    head = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    fake.fail_next = 2
    await send(service, *hook("github", action="opened", sha=head))
    service.idle()
    assert 2 == len([r for r in fake.requests if r.answered == 503])
    assert 1 == len(fake.comments[PR])
    assert [head] == [sha for sha, _, _ in statuses(fake, "patchctl/plan")]


async def test_a_refused_token_is_reported_without_the_token(
    service: Service, fake: FakeForge
) -> None:
    """A 401 is not retried; the status table names the forge host and the HTTP status, and
    neither it nor the forge's record of requests shows the token anywhere but its header."""
    fake.token = "another-token-the-forge-expects"  # noqa: S105 - a test fixture
    head = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    await send(service, *hook("github", action="opened", sha=head))
    service.idle()
    with service.store.read() as conn:
        forge = status_store.get_status(conn)["forge"]["value"]
    assert 1 == len(fake.requests)
    assert (1, 1) == (forge["sent"], forge["failed"])  # sent: the first pass's status
    assert "HTTP 401" in forge["lastError"]
    assert "(permanent)" in forge["lastError"]
    assert TOKEN not in json.dumps(forge)


async def test_a_pull_request_of_another_repository_is_not_planned(
    service: Service, fake: FakeForge
) -> None:
    """The configured repository decides: another repository's event queues nothing."""
    head = push_to_branch(service.repo, APPROVAL.format(patches="USN-7200-1"))
    body, headers = hook("github", action="opened", sha=head)
    body = body.replace(b"acme/policies", b"mallory/elsewhere")
    headers["X-Hub-Signature-256"] = (
        "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    answer = await send(service, body, headers)
    service.idle()
    assert False is answer["planQueued"]
    assert [] == fake.requests


async def test_a_revision_the_access_policy_refuses_fails_with_the_reason(
    example_repo: PolicyRepo, fake: FakeForge, tmp_path: Path
) -> None:
    """An approval committed by someone the access policy does not allow: the tip gets a
    failure status saying which object was not applied and why."""
    config = tmp_path / "access.toml"
    config.write_text(
        '[access]\nrequire-signed = false\n\n[access.tenants."*"]\n'
        'approvers = ["alice@example.com"]\n',
        encoding="utf-8",
    )
    controller, store, app = start_service(
        example_repo, fake, tmp_path, policy=access.load_access(config)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        assert controller.loop.wait_idle(30)
        service = Service(client, controller, store, example_repo, fake)
        service.wait_for("the first apply status", lambda: statuses(fake, "patchctl/apply"))
        example_repo.write(
            "policies/approvals/2026-12-kernel.yaml", APPROVAL.format(patches="USN-7200-1")
        )
        rogue = example_repo.commit("approve the kernel", author=MALLORY)
        service.pass_now()
        service.wait_for(
            "the failure status",
            lambda: [s for s in statuses(fake, "patchctl/apply") if s[0] == rogue],
        )
        service.idle()
    store.close()
    first = example_repo.repo.commit("HEAD~1").hexsha
    [(first_sha, first_state, _), (sha, state, description)] = statuses(fake, "patchctl/apply")
    assert (first, "success") == (first_sha, first_state)
    assert (rogue, "failure") == (sha, state)
    assert description.startswith("not applied: Approval/acme/retail/2026-12-kernel: ")
    assert "mallory@evil.example" in description


@pytest.mark.slow
def test_serve_with_forge_options_reports_to_the_forge(
    example_repo: PolicyRepo, fake: FakeForge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `patchctl serve --forge github ...` process: the token from the environment, a
    status on the applied revision, and a verified pull-request delivery answered 202 and
    commented on."""
    monkeypatch.setenv("PATCHCTL_FORGE_TOKEN", TOKEN)
    monkeypatch.setenv("PATCHCTL_WEBHOOK_SECRET", SECRET)
    serve = Serve(database_url=f"sqlite:///{tmp_path / 'serve.db'}", state_dir=tmp_path / "state")
    head = push_to_branch(example_repo, APPROVAL.format(patches="USN-7200-1"))
    serve.start(
        "--repo",
        str(example_repo.path),
        "--no-watch",
        "--forge",
        "github",
        "--forge-url",
        fake.url,
        "--forge-repository",
        "acme/policies",
    )
    try:
        serve.wait_for("the apply status", lambda: statuses(fake, "patchctl/apply"))
        body, headers = hook("github", action="opened", sha=head)
        answer = httpx.post(
            f"{serve.base}/api/v1/hooks/git",
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=10,
        )
        serve.wait_for("the plan status", lambda: statuses(fake, "patchctl/plan"))
    finally:
        logs = serve.stop()
    assert (202, True) == (answer.status_code, answer.json()["planQueued"])
    main_sha = example_repo.repo.commit("main").hexsha
    assert [(main_sha, "success", "applied by patchctl")] == statuses(fake, "patchctl/apply")
    assert [(head, "success", ONE_UNKNOWN)] == statuses(fake, "patchctl/plan")
    assert 1 == len(fake.comments[PR])
    assert '"forge": "github acme/policies"' in logs
    assert TOKEN not in logs
