"""`GET /api/v1/plan` and `GET /api/v1/catalogue` through the real app with its reconcile loop,
over a policy repository served as a git URL whose pull requests exist only as forge refs
(`refs/pull/N/head`): the service fetches them, plans on its fleet, and shows each read token
its own tenant scope. `patchctl plan --server` is run against the app on a real socket."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from controller.cli import main
from controller.core.patches import PatchRecord
from controller.kinds.common import OsFamily, Severity
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, ServiceOptions
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, catalogue, devices, reports, tokens
from controller.testing import PolicyRepo, free_port

if TYPE_CHECKING:
    from controller.testing import SettableClock

pytestmark = pytest.mark.anyio

POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail, logistics]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux, tenant: acme}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: linux, tenant: acme}
spec: {os: linux, targets: {groups: [linux]}, include: [USN-1-1]}
"""


def approval(name: str, tenant: str, patches: str) -> str:
    return (
        f"apiVersion: patchctl/v1\nkind: Approval\nmetadata: {{name: {name}, tenant: {tenant}}}\n"
        f"spec: {{patches: [{patches}], targets: {{groups: [linux]}}, reason: CVE-2026-1, "
        "ticket: CHG-7, expires: 2026-12-31}\n"
    )


@dataclass
class Forge:
    """The policy repository as a forge holds it; PR 42 and PR 43 are only `refs/pull/N/head`."""

    repo: PolicyRepo
    main: str
    pr42: str
    pr43: str  # does not validate


@pytest.fixture
def forge(tmp_path: Path) -> Forge:
    repo = PolicyRepo(tmp_path / "forge")
    repo.write("policies/all.yaml", POLICY)
    main = repo.commit("fleet")
    repo.write("policies/approvals/retail.yaml", approval("openssl", "acme/retail", "USN-1-1"))
    repo.write("policies/approvals/logistics.yaml", approval("curl", "acme/logistics", "USN-2-1"))
    repo.write("policies/approvals/partner.yaml", approval("typo", "acme", "USN-9999-1"))
    pr42 = repo.commit("approve")
    repo.write("policies/approvals/broken.yaml", "kind: Approval\nspec: {}\n")
    pr43 = repo.commit("broken")
    repo.repo.git.reset("-q", "--hard", main)
    repo.repo.git.update_ref("refs/pull/42/head", pr42)
    repo.repo.git.update_ref("refs/pull/43/head", pr43)
    return Forge(repo, main, pr42, pr43)


def enrol(store: Store, hostname: str, tenant: str, clock: SettableClock) -> None:
    """A Linux device of `tenant` whose latest scan misses USN-1-1 and USN-2-1."""
    now = clock()
    with store.write() as conn:
        device = devices.enrol(
            conn,
            devices.Enrolment(
                tenant=tenant,
                hostname=hostname,
                os_family="linux",
                os_name="Ubuntu",
                os_version="24.04",
                role="server",
                agent_version="1.0",
                labels={},
            ),
            poll_interval=60,
            now=now,
        ).device_id
        scan = reports.Scan(
            scanned_at=now,
            reboot_required=False,
            missing=(("USN-1-1", {}), ("USN-2-1", {})),
            installed=(),
        )
        reports.write_reports(conn, [reports.Report(device_id=device, scan=scan)], now=now)


def build_app(
    forge: Forge, store: Store, clock: SettableClock, state_dir: Path
) -> tuple[Any, Controller]:
    enrol(store, "web-01", "acme/retail", clock)
    enrol(store, "log-01", "acme/logistics", clock)
    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id="USN-1-1", title="OpenSSL", severity=Severity.IMPORTANT, os=OsFamily.LINUX
            ),
            PatchRecord(id="USN-2-1", title="curl", severity=Severity.MODERATE, os=OsFamily.LINUX),
        ],
        now=clock(),
    )
    reconciler = Reconciler(
        store=store,
        source=PolicySource(forge.repo.path.as_uri(), "main", state_dir),
        clock=clock,
    )
    options = ServiceOptions(
        interval=timedelta(hours=1),
        jitter=0.0,
        watch_branch=False,
        notify=False,
        feeds=False,
        scheduled_reports=False,
    )
    controller = Controller(reconciler, options)
    return create_app(store, Settings(clock=clock), controller), controller


@dataclass
class Service:
    client: httpx.AsyncClient
    store: Store
    clock: SettableClock

    def token(self, tenant: str, kind: tokens.TokenKind = tokens.TokenKind.READ) -> str:
        with self.store.write() as conn:
            return tokens.create_token(conn, kind=kind, tenant=tenant, now=self.clock()).secret

    async def plan(self, tenant: str, base: str = "main", head: str = "refs/pull/42/head") -> Any:
        answer = await self.client.get(
            "/api/v1/plan",
            params={"base": base, "head": head},
            headers={"Authorization": f"Bearer {self.token(tenant)}"},
        )
        assert 200 == answer.status_code, answer.text
        return answer.json()


@pytest.fixture
async def service(
    forge: Forge, store: Store, clock: SettableClock, tmp_path: Path
) -> AsyncIterator[Service]:
    app, controller = build_app(forge, store, clock, tmp_path / "state")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        assert controller.loop.wait_idle(30)
        yield Service(client, store, clock)


def local_plan(forge: Forge, database_url: str, clock: SettableClock, tmp_path: Path) -> Any:
    """`patchctl plan --format json` on the forge's own repository and the same database."""
    done = CliRunner().invoke(
        main,
        [
            "plan",
            "--repo",
            str(forge.repo.path),
            "--base",
            "main",
            "--head",
            "refs/pull/42/head",
            "--db",
            database_url,
            "--state-dir",
            str(tmp_path / "cli-state"),
            "--now",
            clock().isoformat(),
            "--format",
            "json",
        ],
    )
    assert 0 == done.exit_code, done.output
    return json.loads(done.stdout)


async def test_the_api_plan_equals_the_local_plan_with_the_database(
    service: Service, forge: Forge, database_url: str, clock: SettableClock, tmp_path: Path
) -> None:
    """A partner token's plan of PR 42, fetched by its forge ref, is the plan `patchctl plan`
    computes next to the database, field for field, labelled `pr-42`."""
    remote = await service.plan("acme")
    local = local_plan(forge, database_url, clock, tmp_path)
    assert "acme" == remote.pop("scope")
    assert None is local.pop("scope")
    assert local == remote
    assert (f"main@sha1:{forge.main}", f"pr-42@sha1:{forge.pr42}") == (
        remote["base"],
        remote["head"],
    )
    assert [
        ("unknown-patch", "Approval/acme/typo"),
        ("approves-nothing", "Approval/acme/typo"),
    ] == [(w["code"], w["object"]) for w in remote["warnings"]]
    assert [{"id": "USN-1-1", "title": "OpenSSL", "severity": "important", "known": True}] == next(
        c for c in remote["changes"] if c["object"] == "Approval/acme/retail/openssl"
    )["approved"]


@pytest.mark.parametrize(
    ("tenant", "objects", "device_names"),
    [
        pytest.param(
            "acme/retail", ["Approval/acme/retail/openssl"], [("web-01", ["USN-1-1"])], id="retail"
        ),
        pytest.param(
            "acme/logistics",
            ["Approval/acme/logistics/curl"],
            [("log-01", ["USN-2-1"])],
            id="logistics",
        ),
        pytest.param(
            "acme",
            ["Approval/acme/typo", "Approval/acme/logistics/curl", "Approval/acme/retail/openssl"],
            [("log-01", ["USN-2-1"]), ("web-01", ["USN-1-1"])],
            id="partner",
        ),
        pytest.param("other", [], [], id="unrelated-tenant"),
    ],
)
async def test_a_token_sees_only_its_tenant_scope(
    service: Service, tenant: str, objects: list[str], device_names: list[tuple[str, list[str]]]
) -> None:
    """Objects, devices, warnings and compliance come from the token's scope only."""
    found = await service.plan(tenant)
    assert objects == [c["object"] for c in found["changes"]]
    assert device_names == [(d["name"], d["granted"]) for d in found["devices"]]
    shown = {w["object"] for w in found["warnings"]}
    assert shown <= set(objects)
    assert sum(sum(s.values()) for s in found["complianceAfter"].values()) == len(device_names)


@pytest.mark.parametrize(
    ("params", "kind", "status", "expected"),
    [
        pytest.param(
            {"base": "main", "head": "--upload-pack=touch x"},
            "read",
            422,
            "head: '--upload-pack=touch x' is not a branch name",
            id="option-as-ref",
        ),
        pytest.param(
            {"base": "main..x", "head": "main"},
            "read",
            422,
            "base: 'main..x' is not a branch name",
            id="range",
        ),
        pytest.param({"base": "main"}, "read", 422, "head", id="missing-head"),
        pytest.param(
            {"base": "main", "head": "refs/pull/99/head"},
            "read",
            404,
            "the policy repository has no ref 'refs/pull/99/head'",
            id="unknown-pr",
        ),
        pytest.param(
            {"base": "main", "head": "0123456789abcdef0123456789abcdef01234567"},
            "read",
            404,
            "head: the policy repository has no revision",
            id="unknown-commit",
        ),
        pytest.param(
            {"base": "0" * 40, "head": "main"},
            "read",
            404,
            "base: the policy repository has no revision",
            id="the-all-zero-id",
        ),
        pytest.param(
            {"base": "main", "head": "refs/pull/43/head"},
            "read",
            422,
            "does not validate (1 error(s))",
            id="invalid-head",
        ),
        pytest.param(
            {"base": "main", "head": "main"}, "none", 401, "missing bearer token", id="no-token"
        ),
        pytest.param(
            {"base": "main", "head": "main"},
            "enrollment",
            403,
            "needs a read token",
            id="enrolment-token",
        ),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    service: Service, forge: Forge, params: dict[str, str], kind: str, status: int, expected: str
) -> None:
    """Ill-formed refs, refs the forge lacks, invalid revisions and wrong tokens are refused
    with the field or ref named; no file appears where an option would have written one."""
    headers = (
        {}
        if kind == "none"
        else {"Authorization": f"Bearer {service.token('acme', tokens.TokenKind(kind))}"}
    )
    answer = await service.client.get("/api/v1/plan", params=params, headers=headers)
    assert status == answer.status_code, answer.text
    assert expected in answer.text
    assert not (Path.cwd() / "x").exists()


async def test_the_catalogue_snapshot_feeds_an_offline_plan(
    service: Service, forge: Forge, tmp_path: Path
) -> None:
    """`GET /api/v1/catalogue` lists ids, titles, severities and what rules select on; saved to a file, it gives a
    plan without fleet or database its titles and its unknown-id warning."""
    answer = await service.client.get(
        "/api/v1/catalogue", headers={"Authorization": f"Bearer {service.token('acme/retail')}"}
    )
    assert 200 == answer.status_code, answer.text
    snapshot = answer.json()
    assert [
        {
            "id": "USN-1-1",
            "title": "OpenSSL",
            "severity": "important",
            "os": "linux",
            "classification": "other",
            "product": None,
            "rating": None,
        },
        {
            "id": "USN-2-1",
            "title": "curl",
            "severity": "moderate",
            "os": "linux",
            "classification": "other",
            "product": None,
            "rating": None,
        },
    ] == snapshot["patches"]
    saved = tmp_path / "catalogue.json"
    saved.write_text(json.dumps(snapshot), encoding="utf-8")
    done = CliRunner().invoke(
        main,
        [
            "plan",
            "--repo",
            str(forge.repo.path),
            "--base",
            "main",
            "--head",
            "refs/pull/42/head",
            "--catalogue",
            str(saved),
            "--state-dir",
            str(tmp_path / "empty"),
        ],
    )
    assert 0 == done.exit_code, done.output
    assert "- approves **USN-1-1** (important): OpenSSL" in done.stdout.splitlines()
    assert (
        "- ⚠️ `Approval/acme/typo`: USN-9999-1 is not in the patch catalogue (2 patches): a typo, "
        "or a patch no feed has published yet"
    ) in done.stdout.splitlines()
    assert "_Fleet state not available here: device effects are not shown._" in done.stdout


async def test_without_a_reconcile_loop_the_plan_is_unavailable(api: Any) -> None:
    """An app with no policy repository answers 503 with a reason, not a traceback."""
    answer = await api.client.get(
        "/api/v1/plan",
        params={"base": "main", "head": "main"},
        headers={"Authorization": f"Bearer {api.token('acme')}"},
    )
    assert (503, "unavailable") == (answer.status_code, answer.json()["error"])


@pytest.fixture
def served(
    forge: Forge, sqlite_store: Store, clock: SettableClock, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The app with its loop on a real loopback port, and a read token of acme/retail."""
    app, controller = build_app(forge, sqlite_store, clock, tmp_path / "state")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False, lifespan="on"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while thread.is_alive() and not running.started:
        thread.join(0.05)
    assert running.started, "uvicorn did not start"
    assert controller.loop.wait_idle(30)
    with sqlite_store.write() as conn:
        secret = tokens.create_token(
            conn, kind=tokens.TokenKind.READ, tenant="acme/retail", now=clock()
        ).secret
    yield f"http://127.0.0.1:{config.port}", secret
    running.should_exit = True
    thread.join(15)


def test_plan_with_server_uses_the_service_and_the_token_from_the_environment(
    served: tuple[str, str], tmp_path: Path
) -> None:
    """`patchctl plan --server URL` with PATCHCTL_TOKEN prints the service's plan for the
    token's scope; without the token it exits 2 naming the variable."""
    url, secret = served
    args = ["plan", "--server", url, "--base", "main", "--head", "refs/pull/42/head"]
    runner = CliRunner()
    done = runner.invoke(main, [*args, "--exit-code"], env={"PATCHCTL_TOKEN": secret})
    refused = runner.invoke(main, args, env={"PATCHCTL_TOKEN": ""})
    bad = runner.invoke(main, [*args[:-2], "--head=--bad"], env={"PATCHCTL_TOKEN": secret})
    assert 1 == done.exit_code, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith("### patchctl plan: `main@sha1:")
    assert "→ `pr-42@sha1:" in lines[0]
    assert "#### `Approval/acme/retail/openssl`: ApprovalGranted" in lines
    assert "| acme/retail | USN-1-1 | - | 1: web-01 | none |" in lines
    assert "Approval/acme/logistics/curl" not in done.stdout
    assert secret not in done.output
    assert 2 == refused.exit_code
    assert "--server needs a read token in PATCHCTL_TOKEN" in refused.output
    assert 2 == bad.exit_code
    assert "head: '--bad' is not a branch name" in bad.output
