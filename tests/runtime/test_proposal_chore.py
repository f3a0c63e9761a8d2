"""The service's `proposals` chore after a real reconcile: a real repository, a real SQLite
store with an enrolled device and its scan, the GitHub fake for the pull request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from controller.core.patches import PatchRecord
from controller.forges.settings import ForgeKind, ForgeSettings
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime.reconcile import PolicySource, Reconciler
from controller.runtime.service import Controller, PassContext, ServiceOptions
from controller.store import Store, catalogue, devices, open_store, reports
from controller.testing import FakeForge, PolicyRepo

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOKEN = "forge-token-for-tests"  # noqa: S105 - the fake forge's token
BRANCH = "patchctl/proposals/acme/retail/web"
POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux-web, tenant: acme/retail}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: web, tenant: acme/retail}
spec: {os: linux, targets: {groups: [linux-web]}, rules: [{classifications: [security]}]}
---
apiVersion: patchctl/v1
kind: ApprovalProposal
metadata: {name: weekly, tenant: acme}
spec: {minimumReleaseAge: 7d}
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def seed(store: Store) -> None:
    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id="USN-7123-1",
                os=OsFamily.LINUX,
                vendor="ubuntu",
                classification=Classification.SECURITY,
                severity=Severity.IMPORTANT,
                released=date(2026, 11, 1),
            )
        ],
        now=NOW,
    )
    with store.write() as conn:
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme/retail",
                hostname="web-01",
                os_family="linux",
                os_name="Ubuntu",
                os_version="24.04",
                role="server",
                agent_version="1.0",
                labels={},
            ),
            poll_interval=60,
            now=NOW - timedelta(minutes=5),
        )
        scan = reports.Scan(
            scanned_at=NOW - timedelta(minutes=1),
            reboot_required=False,
            missing=(("USN-7123-1", {}),),
            installed=(),
        )
        reports.write_reports(
            conn, [reports.Report(device_id=enrolled.device_id, scan=scan)], now=NOW
        )


def test_the_chore_pushes_the_proposal_and_opens_its_pull_request(
    tmp_path: Path, store: Store
) -> None:
    repo = PolicyRepo(tmp_path / "repo")
    repo.write("policies/all.yaml", POLICY)
    main = repo.commit("policy")
    seed(store)
    fake = FakeForge(kind="github", token=TOKEN)
    fake.start()
    try:
        reconciler = Reconciler(
            store=store,
            source=PolicySource(str(repo.path), "main", tmp_path / "state"),
            clock=lambda: NOW,
        )
        forge = ForgeSettings(
            kind=ForgeKind.GITHUB, url=fake.url, repository=fake.repository, token=TOKEN
        )
        options = ServiceOptions(watch_branch=False, notify=False, feeds=False, forge=forge)
        controller = Controller(reconciler, options)
        outcome = reconciler.reconcile()
        assert outcome.result == "applied"
        controller.run_chores_now(PassContext(outcome, reconciler.last_valid, NOW))
    finally:
        fake.stop()
    proposal = repo.repo.git.show(f"{BRANCH}:policies/approvals/proposed/acme/retail/web.yaml")
    assert '  patches: ["USN-7123-1"]' in proposal
    assert repo.repo.git.rev_parse(f"{BRANCH}^") == main
    assert [(p["head"]["ref"], p["base"]["ref"], p["state"]) for p in fake.pulls.values()] == [
        (BRANCH, "main", "open")
    ]
