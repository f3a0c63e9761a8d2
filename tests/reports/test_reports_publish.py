"""One scheduled run end to end: collect per tenant, write, commit, and tell the channels."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from reportfleet import NOW, REVISION

from controller.kinds.notifications import EventType
from controller.kinds.reports import ReportSchedule
from controller.reports.publish import WritebackTarget, published_events, run_schedule
from controller.store import Store, schema
from controller.testing import PolicyRepo

EVERY_TENANT = ReportSchedule.model_validate(
    {
        "apiVersion": "patchctl/v1",
        "kind": "ReportSchedule",
        "metadata": {"name": "weekly"},
        "spec": {"recurrence": {"cron": "0 6 * * MON"}, "formats": ["markdown", "html"]},
    }
)
TENANT_DIRS = ("acme", "acme/logistics", "acme/retail", "other")


def test_a_schedule_of_every_tenant_writes_and_commits_one_report_per_tenant(
    fleet_store: Store, policy_repo: PolicyRepo, tmp_path: Path
) -> None:
    """Files per tenant in the directory and on the reports branch, one event per report."""
    publication = run_schedule(
        fleet_store,
        EVERY_TENANT,
        now=NOW,
        revision=REVISION,
        out_dir=tmp_path / "out",
        writeback=WritebackTarget(repo=str(policy_repo.path), policy_branch="main"),
    )
    expected = sorted(
        f"tenants/{tenant}/compliance.{ext}" for tenant in TENANT_DIRS for ext in ("html", "md")
    )
    assert expected == sorted(publication.files)
    assert expected == sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")
    )
    branch = policy_repo.repo.heads["patchctl-reports"].commit
    assert expected == sorted(str(b.path) for b in branch.tree.traverse() if b.type == "blob")
    assert publication.commit is not None
    assert branch.hexsha == publication.commit.commit
    events = published_events(publication)
    assert [(EventType.REPORT_PUBLISHED, t) for t in TENANT_DIRS] == [
        (e.type, e.tenant) for e in events
    ]
    assert f"branch patchctl-reports ({branch.hexsha[:12]})" in (events[0].body or "")


def test_each_tenant_keeps_its_own_trend(fleet_store: Store) -> None:
    """Collecting per tenant stores one trend key per tenant."""
    run_schedule(fleet_store, EVERY_TENANT, now=NOW, revision=REVISION)
    with fleet_store.read() as conn:
        keys = sorted(
            conn.execute(
                sa.select(schema.status.c.key).where(schema.status.c.key.like("trend:%"))
            ).scalars()
        )
    assert [f"trend:{tenant}" for tenant in TENANT_DIRS] == keys
