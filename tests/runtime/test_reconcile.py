"""One reconcile against a real repository and a real store: apply, idempotence, bad commits."""

from __future__ import annotations

import gc
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import sqlalchemy as sa

from controller.core.patches import PatchRecord
from controller.core.plan import Plan
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime import status as runtime_status
from controller.runtime.reconcile import PendingShards, PolicySource, Reconciler
from controller.sources import gcpause
from controller.store import Store, catalogue, devices, open_store, reports, schema
from controller.store import status as status_store
from controller.testing import PolicyRepo

# Sunday 2026-11-29 02:30 Europe/Berlin: the example's windows-weekly is open (cutoff 05:00).
IN_WINDOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def enrol(
    store: Store,
    hostname: str,
    *,
    tenant: str,
    os_family: str,
    labels: dict[str, str],
    now: datetime,
) -> str:
    with store.write() as conn:
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant=tenant,
                hostname=hostname,
                os_family=os_family,
                os_name="Windows Server 2022" if os_family == "windows" else "Ubuntu",
                os_version="21H2" if os_family == "windows" else "24.04",
                role="server",
                agent_version="1.0",
                labels=labels,
            ),
            poll_interval=60,
            now=now,
        )
    return enrolled.device_id


def report_scan(store: Store, device_id: str, *, missing: tuple[str, ...], now: datetime) -> None:
    with store.write() as conn:
        reports.write_reports(
            conn,
            [
                reports.Report(
                    device_id=device_id,
                    scan=reports.Scan(
                        scanned_at=now,
                        reboot_required=False,
                        missing=tuple((p, {}) for p in missing),
                        installed=(),
                    ),
                )
            ],
            now=now,
        )


def seed_catalogue(store: Store) -> None:
    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id="KB5044284",
                os=OsFamily.WINDOWS,
                vendor="microsoft",
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                rating=9.8,
                released=date(2026, 10, 8),
            ),
            PatchRecord(
                id="KB5099999",
                os=OsFamily.WINDOWS,
                vendor="microsoft",
                classification=Classification.BUGFIX,
                severity=Severity.MODERATE,
                released=date(2026, 10, 8),
            ),
            PatchRecord(
                id="USN-7123-1",
                os=OsFamily.LINUX,
                vendor="ubuntu",
                classification=Classification.SECURITY,
                severity=Severity.IMPORTANT,
                released=date(2026, 11, 1),
            ),
        ],
        now=IN_WINDOW,
    )


def reconciler(repo: PolicyRepo, store: Store, tmp_path: Path, now: datetime) -> Reconciler:
    clock = [now]
    found = Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", tmp_path / "state"),
        clock=lambda: clock[0],
    )
    found.clock_cell = clock  # type: ignore[attr-defined]
    return found


def job_rows(store: Store) -> list[tuple[str, str, list[str]]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(
                schema.jobs.c.device_id, schema.jobs.c.kind, schema.jobs.c.patch_ids
            ).order_by(schema.jobs.c.kind)
        ).all()
    return [(r.device_id, r.kind, r.patch_ids) for r in rows]


def test_reconcile_issues_installs_and_is_idempotent(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Approved patches of a device in an open window become one install; a second pass writes nothing."""
    seed_catalogue(store)
    win = enrol(
        store,
        "WEB-01",
        tenant="acme/retail",
        os_family="windows",
        labels={"env": "prod"},
        now=IN_WINDOW - timedelta(days=1),
    )
    report_scan(
        store, win, missing=("KB5044284", "KB5099999"), now=IN_WINDOW - timedelta(minutes=5)
    )
    with store.write() as conn:
        conn.execute(schema.devices.update().values(last_seen=IN_WINDOW - timedelta(seconds=10)))
    first = reconciler(example_repo, store, tmp_path, IN_WINDOW).reconcile()
    assert ("applied", f"main@sha1:{example_repo.repo.head.commit.hexsha}") == (
        first.result,
        first.applied_revision,
    )
    assert [(win, "install", ["KB5044284"])] == job_rows(store)
    second = reconciler(example_repo, store, tmp_path, IN_WINDOW).reconcile()
    written = {
        k: v
        for k, v in second.counts.items()
        if k in {"jobsIssued", "jobsCancelled", "jobsExpired", "complianceWritten", "alertsRaised"}
    }
    assert {
        "jobsIssued": 0,
        "jobsCancelled": 0,
        "jobsExpired": 0,
        "complianceWritten": 0,
        "alertsRaised": 0,
    } == written


def test_a_broken_commit_keeps_the_last_good_revision(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """An invalid head is recorded and alerted once; the last valid revision stays enforced."""
    good = f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    runner = reconciler(example_repo, store, tmp_path, IN_WINDOW)
    assert "applied" == runner.reconcile().result
    example_repo.write(
        "policies/approvals/broken.yaml",
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: broken}\nspec: {patches: []}\n",
    )
    bad = f"main@sha1:{example_repo.commit('broken approval')}"
    outcome = runner.reconcile()
    assert ("policy-invalid", good, bad) == (
        outcome.result,
        outcome.applied_revision,
        outcome.attempted_revision,
    )
    assert [
        "policies/approvals/broken.yaml:4:1: spec.targets: required field is missing",
        "policies/approvals/broken.yaml:4:1: spec.reason: required field is missing",
        "policies/approvals/broken.yaml:4:8: spec.patches: needs at least 1 item(s)",
    ] == sorted(outcome.errors, key=lambda e: (e.split(": ")[0], "patches" in e))
    with store.read() as conn:
        status = status_store.get_status(conn)
    assert {"lastAppliedRevision": good, "lastAttemptedRevision": bad} == {
        k: v for k, v in status["source"]["value"].items() if k != "errors"
    }
    conditions = {c["type"]: c for c in status["conditions"]["value"]}
    assert ("False", "True", "PolicyInvalid") == (
        conditions["Ready"]["status"],
        conditions["Stalled"]["status"],
        conditions["Ready"]["reason"],
    )


def test_a_restarted_controller_restores_the_last_applied_revision(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """After a restart with a broken head, the last applied revision is loaded from git again."""
    good = f"main@sha1:{example_repo.repo.head.commit.hexsha}"
    reconciler(example_repo, store, tmp_path, IN_WINDOW).reconcile()
    example_repo.write("policies/x.yaml", "kind: [\n")
    example_repo.commit("broken yaml")
    fresh = reconciler(example_repo, store, tmp_path, IN_WINDOW)
    outcome = fresh.reconcile()
    assert ("policy-invalid", good) == (outcome.result, outcome.applied_revision)
    assert outcome.plan is not None


def test_policy_invalid_alert_is_raised_once(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """Alerts follow transitions: one PolicyInvalid per bad revision, not one per pass."""
    runner = reconciler(example_repo, store, tmp_path, IN_WINDOW)
    runner.reconcile()
    example_repo.write("policies/x.yaml", "kind: [\n")
    example_repo.commit("broken yaml")
    for _ in range(3):
        runner.reconcile()
    with store.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.alerts)
            .where(schema.alerts.c.kind == "PolicyInvalid")
        ).scalar_one()
    assert 1 == count


def test_a_plan_summary_that_did_not_change_is_not_rewritten(
    example_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """The plan summary (every device's pending approvals) is written when it changes or when
    someone else wrote the stored one since; a pass that changed nothing leaves it alone."""
    seed_catalogue(store)
    device = enrol(
        store,
        "WEB-01",
        tenant="acme/retail",
        os_family="windows",
        labels={"env": "prod"},
        now=IN_WINDOW - timedelta(days=1),
    )
    report_scan(store, device, missing=("KB5044284",), now=IN_WINDOW - timedelta(minutes=5))
    the_reconciler = reconciler(example_repo, store, tmp_path, IN_WINDOW)

    def pass_at(minutes: int) -> tuple[object, object]:
        the_reconciler.clock_cell[0] = IN_WINDOW + timedelta(minutes=minutes)  # type: ignore[attr-defined]
        the_reconciler.reconcile()
        with store.read() as conn:
            plan_at = status_store.updated_times(conn, {"plan"})["plan"]
            return plan_at, status_store.get_value(conn, "plan")

    first_at, first = pass_at(0)
    assert 1 == first["installable"]
    assert (first_at, first) == pass_at(1)
    with store.write() as conn:  # another replica wrote its own summary meanwhile
        status_store.set_status(conn, "plan", {"other": True}, now=IN_WINDOW + timedelta(minutes=1))
    assert (IN_WINDOW + timedelta(minutes=2), first) == pass_at(2)
    report_scan(store, device, missing=(), now=IN_WINDOW + timedelta(minutes=3))
    changed_at, changed = pass_at(4)
    assert (IN_WINDOW + timedelta(minutes=4), 0) == (changed_at, changed["installable"])


APPROVAL_POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: msp}
spec: {clients: [c0]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-linux, tenant: msp}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: lin, tenant: msp}
spec: {os: linux, targets: {groups: [all-linux]}, rules: [{severities: [important]}]}
"""


def test_pending_approvals_are_stored_in_shards_and_only_changed_shards_are_rewritten(
    policy_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """The pending approvals by device read back whole (`runtime.status.plan_value`); a pass
    after one device's report rewrites that device's shard and leaves every other alone."""
    seed_catalogue(store)
    policy_repo.write("policies/policy.yaml", APPROVAL_POLICY)
    policy_repo.commit("policy")
    ids = [
        enrol(
            store,
            f"lin-{n}",
            tenant="msp/c0",
            os_family="linux",
            labels={},
            now=IN_WINDOW - timedelta(days=1),
        )
        for n in range(2)
    ]
    for device in ids:
        report_scan(store, device, missing=("USN-7123-1",), now=IN_WINDOW - timedelta(minutes=5))
    the_reconciler = reconciler(policy_repo, store, tmp_path, IN_WINDOW)

    def pass_at(minutes: int) -> tuple[dict[str, object], dict[str, datetime]]:
        the_reconciler.clock_cell[0] = IN_WINDOW + timedelta(minutes=minutes)  # type: ignore[attr-defined]
        the_reconciler.reconcile()
        with store.read() as conn:
            stored = status_store.get_status(conn)
            shards = [k for k in stored if k.startswith(runtime_status.PENDING_SHARD_PREFIX)]
            times = status_store.updated_times(conn, shards)
        return runtime_status.plan_value(stored)["pendingApprovalsByDevice"], times

    pending, first = pass_at(0)
    assert {device: ["USN-7123-1"] for device in ids} == pending
    assert runtime_status.PENDING_SHARDS == len(first)
    report_scan(store, ids[0], missing=(), now=IN_WINDOW + timedelta(minutes=1))
    pending, second = pass_at(2)
    assert {ids[1]: ["USN-7123-1"]} == pending
    rewritten = {key for key, at in second.items() if at != first[key]}
    assert {runtime_status.pending_shard(ids[0])} == rewritten
    other = runtime_status.pending_shard(ids[1])
    with store.write() as conn:  # another replica wrote that shard meanwhile
        status_store.set_status(conn, other, {}, now=IN_WINDOW + timedelta(minutes=2))
    pending, third = pass_at(3)
    assert {ids[1]: ["USN-7123-1"]} == pending
    assert {other} == {key for key, at in third.items() if at != second[key]}


def _plan_of(pending: dict[str, tuple[str, ...]]) -> Plan:
    devices = [
        SimpleNamespace(device_id=device_id, pending_approval=patches)
        for device_id, patches in pending.items()
    ]
    return cast("Plan", SimpleNamespace(devices=devices))


def test_kept_pending_shards_equal_the_ones_built_from_scratch() -> None:
    """After incremental updates (a device re-planned without approvals, one retired, one
    enrolled, the others reused), the kept shards are those a fresh build gives, and exactly
    the shards of the devices that changed are dirty."""
    before = {f"dev-{n}": (f"P-{n}",) for n in range(50)}
    kept = PendingShards()
    kept.update(_plan_of(before), None)
    assert {runtime_status.pending_shard(d) for d in before} == kept.dirty
    kept.dirty.clear()
    after = dict(before)
    after["dev-1"] = ()  # re-planned: nothing pending any more
    del after["dev-2"]  # retired
    after["dev-new"] = ("P-new",)  # enrolled (planned afresh, listed or not)
    after["dev-3"] = ("P-3",)  # re-planned, unchanged
    kept.update(_plan_of(after), frozenset({"dev-1", "dev-3"}))
    fresh = PendingShards()
    fresh.update(_plan_of(after), None)
    assert fresh.shards == kept.shards
    assert {runtime_status.pending_shard(d) for d in ("dev-1", "dev-2", "dev-new")} == kept.dirty


def test_a_pending_shard_stores_each_set_of_patches_once_and_reads_back_whole() -> None:
    """Devices waiting for the same approvals share one stored list; the value reads back as
    device → patch ids, and so does a shard stored as that plain mapping (before sharing)."""
    shared = ("USN-1", "USN-2")
    by_device = {"dev-1": shared, "dev-2": ("USN-1", "USN-2"), "dev-3": ("USN-9",)}
    value = runtime_status.pending_shard_value(by_device)
    assert [["USN-1", "USN-2"], ["USN-9"]] == value["patchSets"]
    assert {"dev-1": 0, "dev-2": 0, "dev-3": 1} == value["devices"]
    stored = json.loads(json.dumps(value))
    expected = {device: list(patches) for device, patches in by_device.items()}
    assert expected == runtime_status.pending_of_shard(stored)
    assert expected == runtime_status.pending_of_shard(expected)  # the plain mapping
    assert {} == runtime_status.pending_of_shard(["not", "a", "shard"])
    broken = {"patchSets": [["USN-1"]], "devices": {"dev-1": 0, "dev-2": 7, "dev-3": "x"}}
    assert {"dev-1": ["USN-1"]} == runtime_status.pending_of_shard(broken)


def test_what_a_pass_keeps_is_left_out_of_later_garbage_collections(
    policy_repo: PolicyRepo, store: Store, tmp_path: Path
) -> None:
    """A pass runs with the cyclic collector off and turns it back on; after each pass, what
    it keeps is frozen (out of the collector's walks): the planner's views and plans after a
    full pass, what an incremental pass made after it; the next full pass unfreezes them, so
    what it replaces can go. A collector the caller had off stays off."""
    seed_catalogue(store)
    policy_repo.write("policies/policy.yaml", APPROVAL_POLICY)
    policy_repo.commit("policy")
    device = enrol(store, "lin-0", tenant="msp/c0", os_family="linux", labels={}, now=IN_WINDOW)
    report_scan(store, device, missing=("USN-7123-1",), now=IN_WINDOW)
    the_reconciler = reconciler(policy_repo, store, tmp_path, IN_WINDOW)
    gcpause.unfreeze()
    during: list[bool] = []
    save = the_reconciler._save_status
    the_reconciler._save_status = lambda outcome: (during.append(gc.isenabled()), save(outcome))  # type: ignore[method-assign]
    the_reconciler.reconcile()
    assert ([False], True) == (during, gc.isenabled())
    frozen = gc.get_freeze_count()
    assert frozen > 0
    gc.disable()
    try:
        incremental = the_reconciler.reconcile()
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert incremental.plan is not None
    assert not any(  # its plan is in no generation: frozen, no young collection walks it
        any(o is incremental.plan for o in gc.get_objects(generation)) for generation in range(3)
    )
    the_reconciler.observe_step(now=IN_WINDOW + timedelta(minutes=1))  # incremental
    assert gc.get_freeze_count() > 0
    the_reconciler.observe_step(now=IN_WINDOW + the_reconciler.resync)  # a resync: full
    assert 0 == gc.get_freeze_count()


def test_a_device_s_pending_shard_is_the_stored_key_of_its_id_s_digest() -> None:
    """The shard key is `plan:pending:` and the hex of the id's one-byte BLAKE2b digest (what
    stored summaries and their readers use), one string per shard shared by every device."""
    for device_id in ("dev-1", "0b5f3c9e-3f5d-4c55-9a4b-2f1f8e1f7a10", "é"):
        digest = hashlib.blake2b(device_id.encode(), digest_size=1).hexdigest()
        assert f"plan:pending:{digest}" == runtime_status.pending_shard(device_id)
    keys = {runtime_status.pending_shard(f"dev-{n}") for n in range(4096)}
    assert 256 == len(keys)
    assert runtime_status.pending_shard("dev-1") is runtime_status.pending_shard("dev-1")
