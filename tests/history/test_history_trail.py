"""The persisted audit trail: incremental syncs through the store, force-pushes, rejected
approvals kept from the planner, and the trail read back by `patchctl audit` and the read API.

Real git repositories, real SQLite and PostgreSQL stores, the real HTTP app; only the clock is
fixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from historyrepos import ALICE, BOB, History, SshKey, approval, linux_device

from controller.cli import main
from controller.runtime import access, audit
from controller.runtime.access import AccessPolicy
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.settings import Settings
from controller.server import create_app
from controller.store import Store, devices, jobs, reports, schema, tokens
from controller.store import status as status_store
from controller.store.job_states import JobState
from controller.testing import PolicyRepo

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # the example's windows-weekly is open
OPENSSL = "policies/approvals/openssl.yaml"
KERNEL = "policies/approvals/kernel.yaml"


def trail(repo: Path, store: Store, tmp_path: Path, policy: AccessPolicy | None = None) -> Any:
    return audit.AuditTrail(
        store=store,
        repo=str(repo),
        branch="main",
        state_dir=tmp_path / "state",
        access=policy or AccessPolicy.open(),
    )


def rows(store: Store) -> list[tuple[str, str, str]]:
    """(action, actor, object) of every audit row, in insertion order."""
    a = schema.audit_events.c
    with store.read() as conn:
        found = conn.execute(sa.select(a.action, a.actor, a.object).order_by(a.id)).all()
    return [tuple(row) for row in found]  # type: ignore[misc]


def signed_policy(ssh_keys: dict[str, SshKey]) -> AccessPolicy:
    return access.parse_access(
        {
            "keys": [{"name": "alice", "ssh": ssh_keys["alice"].allowed_signers_line}],
            "tenants": {
                "acme": {"approvers": ["*@acme.example"], "require-signed": True, "keys": ["alice"]}
            },
        },
        base_dir=Path(),
    )


# --- the incremental path --------------------------------------------------------------------


def test_a_second_sync_reads_only_the_new_commits(
    git_history: History, store: Store, tmp_path: Path
) -> None:
    """The cursor lives in the store: a fresh trail (a restarted controller) reads one commit."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    granted = git_history.commit("grant openssl", author=BOB)
    first = trail(git_history.path, store, tmp_path).sync(now=NOW)
    git_history.write(OPENSSL, approval("openssl", "USN-1-1, USN-2-2"))
    widened = git_history.commit("widen openssl")
    second = trail(git_history.path, store, tmp_path).sync(now=NOW)
    third = trail(git_history.path, store, tmp_path).sync(now=NOW)

    assert (2, 1, 0) == (first.commits_read, second.commits_read, third.commits_read)
    assert (widened, 1, 0) == (second.tip, second.recorded, third.recorded)
    assert ("ApprovalChanged", ALICE.email, "Approval/acme/retail/openssl") == rows(store)[-1]
    assert [("ApprovalGranted", BOB.email)] == [
        (action, actor) for action, actor, obj in rows(store) if obj.endswith("/openssl")
    ][:1]
    with store.read() as conn:
        cursor = audit.read_cursors(conn)["main"]
    assert (widened, f"main@sha1:{widened}") == (cursor.tip, cursor.valid_revision)
    assert granted != widened


def test_a_force_push_is_recorded_not_merged(
    git_history: History, store: Store, tmp_path: Path
) -> None:
    """Rewriting the branch records HistoryRewritten and the approval the rewrite undid."""
    seeded = git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    dropped = git_history.commit("grant openssl")
    trail(git_history.path, store, tmp_path).sync(now=NOW)
    git_history.git("reset", "-q", "--hard", seeded)
    git_history.write(KERNEL, approval("kernel", "USN-3-3"))
    git_history.commit("grant kernel instead", author=BOB)

    synced = trail(git_history.path, store, tmp_path).sync(now=NOW)

    assert synced.rewritten
    assert [
        ("HistoryRewritten", "force-push", ""),
        ("ApprovalRevoked", "force-push", "Approval/acme/retail/openssl"),
        ("ApprovalGranted", BOB.email, "Approval/acme/retail/kernel"),
    ] == rows(store)[-3:]
    a = schema.audit_events.c
    with store.read() as conn:
        details = conn.execute(
            sa.select(a.details).where(a.action == "HistoryRewritten")
        ).scalar_one()
    assert ([dropped], seeded) == (details["rewrite"]["dropped"], details["rewrite"]["mergeBase"])


# --- rejected approvals ----------------------------------------------------------------------


def test_unsigned_and_unauthorised_approvals_are_rejected_alerted_once_and_not_planned(
    git_history: History, store: Store, tmp_path: Path, ssh_keys: dict[str, SshKey]
) -> None:
    """Alice's signed grant is planned; Bob's unsigned one is recorded as rejected, alerted
    once over two passes, and approves nothing; SourceVerified says so."""
    git_history.seed()
    git_history.write(OPENSSL, approval("openssl", "USN-1-1"))
    git_history.commit("grant openssl", key=ssh_keys["alice"])
    git_history.write(KERNEL, approval("kernel", "USN-2-1"))
    git_history.commit("grant kernel", author=BOB)
    device = linux_device(store, missing=("USN-1-1", "USN-2-1"), now=NOW)
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(git_history.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
        access=signed_policy(ssh_keys),
    )

    first = reconciler.reconcile()
    second = reconciler.reconcile()

    assert first.plan is not None
    planned = next(d for d in first.plan.devices if d.device_id == device)
    assert ("USN-1-1",) == tuple(planned.installable)
    assert ("False", "ApprovalRejected") == (first.verified.status, first.verified.reason)  # type: ignore[union-attr]
    assert "Approval/acme/retail/kernel" in first.verified.message  # type: ignore[union-attr]
    assert (
        "ApprovalRejected",
        BOB.email,
        "Approval/acme/retail/kernel",
    ) in rows(store)
    a = schema.alerts.c
    with store.read() as conn:
        alerts = conn.execute(sa.select(a.kind, a.tenant).where(a.kind == "ApprovalRejected")).all()
        conditions = status_store.get_status(conn)["conditions"]["value"]
    assert [("ApprovalRejected", "acme/retail")] == [tuple(alert) for alert in alerts]
    assert "False" == next(c for c in conditions if c["type"] == "SourceVerified")["status"]
    assert 0 == second.counts["auditEvents"]


def test_without_an_access_policy_every_approval_applies(
    git_history: History, store: Store, tmp_path: Path
) -> None:
    """The default Reconciler (access=None) records the trail and plans every approval."""
    git_history.seed()
    git_history.write(KERNEL, approval("kernel", "USN-2-1"))
    git_history.commit("grant kernel", author=BOB)
    device = linux_device(store, missing=("USN-2-1",), now=NOW)
    outcome = Reconciler(
        store=store,
        source=PolicySource(str(git_history.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
    ).reconcile()
    assert outcome.plan is not None
    planned = next(d for d in outcome.plan.devices if d.device_id == device)
    assert (("USN-2-1",), "NotConfigured") == (tuple(planned.installable), outcome.verified.reason)  # type: ignore[union-attr]
    assert 0 < outcome.counts["auditEvents"]


# --- who approved KB5044284 for acme/retail, and what happened then --------------------------


@pytest.fixture
def story(example_repo: PolicyRepo, store: Store, tmp_path: Path) -> Store:
    """The example repository reconciled in an open window: WEB-01 gets KB5044284, and fails."""
    merged = "2026-11-20T10:00:00+00:00"  # a week before the window
    example_repo.repo.git.commit(
        "--amend",
        "--no-edit",
        f"--date={merged}",
        env={
            "GIT_COMMITTER_DATE": merged,
            "GIT_COMMITTER_NAME": "Alice Admin",
            "GIT_COMMITTER_EMAIL": "alice@example.com",
        },
    )
    with store.write() as conn:
        web = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname="WEB-01",
                os_family="windows",
                os_name="Windows Server 2022",
                os_version="21H2",
                role="server",
                agent_version="1.0",
                labels={"env": "prod"},
            ),
            poll_interval=60,
            now=NOW - timedelta(days=1),
        ).device_id
        reports.write_reports(
            conn,
            [
                reports.Report(
                    device_id=web,
                    scan=reports.Scan(
                        scanned_at=NOW - timedelta(minutes=5),
                        reboot_required=False,
                        missing=(("KB5044284", {"classification": "security"}),),
                        installed=(),
                    ),
                )
            ],
            now=NOW,
        )
        conn.execute(schema.devices.update().values(last_seen=NOW - timedelta(seconds=10)))
    Reconciler(
        store=store,
        source=PolicySource(str(example_repo.path), "main", tmp_path / "state"),
        clock=lambda: NOW,
    ).reconcile()
    with store.write() as conn:
        job = conn.execute(sa.select(schema.jobs.c.id).where(schema.jobs.c.kind == "install"))
        job_id = job.scalar_one()
        for state, patches in (
            (JobState.ACKED, ()),
            (JobState.FAILED, ({"id": "KB5044284", "result": "failed", "reason": "0x80070005"},)),
        ):
            jobs.record_event(
                conn,
                device_id=web,
                job_id=job_id,
                event=jobs.JobEvent(state=state, patches=patches),
                now=NOW + timedelta(minutes=10),
            )
    return store


def test_one_query_tells_who_approved_a_patch_and_what_happened(
    story: Store, example_repo: PolicyRepo
) -> None:
    """The whitelist commit, the install jobs issued under its revision, their failure."""
    revision = f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    with story.read() as conn:
        entries = audit.query(conn, scope="acme/retail", patch="KB5044284", lineage=True)
    assert [
        ("git", "WhitelistAdded", "acme", revision),
        ("controller", "InstallJobsIssued", "acme/retail", revision),
        ("jobs", "InstallJobsFailed", "acme/retail", revision),
    ] == [(e["source"], e["type"], e["tenant"], e["revision"]) for e in entries]
    assert "alice@example.com" == entries[0]["actor"]
    assert "1 job(s) on web-01; 1 failed; web-01: 0x80070005" == entries[-1]["summary"]


def test_the_audit_command_syncs_and_filters(
    story: Store, example_repo: PolicyRepo, database_url: str, tmp_path: Path
) -> None:
    """`patchctl audit --patch --tenant --json` syncs first and prints the merged story."""
    example_repo.write(
        "policies/approvals/extra.yaml",
        approval("extra", "KB5044284", tenant="acme/retail", group="prod-windows"),
    )
    extra = example_repo.commit("approve KB5044284 for retail (#41)")
    runner = CliRunner()
    common = ["--repo", str(example_repo.path), "--db", database_url, "--state-dir", str(tmp_path)]
    result = runner.invoke(
        main,
        ["audit", *common, "--patch", "KB5044284", "--tenant", "acme/retail", "--json"],
    )
    assert 0 == result.exit_code, result.output
    found = json.loads(result.stdout)
    assert ("ApprovalGranted", f"main@sha1:{extra}", "#41") == (
        found["events"][-1]["type"],
        found["events"][-1]["revision"],
        found["events"][-1]["details"]["commit"]["pullRequest"]["ref"],
    )
    table = runner.invoke(main, ["audit", *common, "--no-sync", "--since", "2020-01-01"])
    assert 0 == table.exit_code, table.output
    assert table.stdout.splitlines()[0].split() == [
        "AT",
        "TYPE",
        "TENANT",
        "ACTOR",
        "OBJECT",
        "REVISION",
        "SUMMARY",
    ]
    assert "InstallJobsIssued" in table.stdout
    bad = runner.invoke(main, ["audit", *common, "--since", "yesterday"])
    assert (2, "--since") == (bad.exit_code, "--since" if "--since" in bad.output else bad.output)


@pytest.mark.anyio
async def test_the_read_api_scopes_the_trail_to_the_token(story: Store) -> None:
    """A retail token sees retail's entries; a logistics token sees none of them."""
    app = create_app(story, Settings(clock=lambda: NOW))
    with story.write() as conn:
        retail, logistics = (
            tokens.create_token(conn, kind=tokens.TokenKind.READ, tenant=t, now=NOW).secret
            for t in ("acme/retail", "acme/logistics")
        )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = [
                await client.get(
                    "/api/v1/audit",
                    params={"patch": "KB5044284"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                for token in (retail, logistics)
            ]
            outside = await client.get(
                "/api/v1/audit",
                params={"tenant": "acme"},
                headers={"Authorization": f"Bearer {retail}"},
            )
    assert [200, 200, 403] == [a.status_code for a in (*answers, outside)]
    seen = [[e["type"] for e in a.json()["events"]] for a in answers]
    assert [["InstallJobsIssued", "InstallJobsFailed"], []] == seen
    assert {"main"} == set(answers[0].json()["trail"])
