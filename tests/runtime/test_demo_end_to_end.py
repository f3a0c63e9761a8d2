"""End to end, from enrolment to a compliant fleet: a real git repository, SQLite, the service
(app, writer, reconcile loop, branch watcher), simulated agents over the protocol, and a clock
the test controls — the machinery of `patchctl demo` on a policy made to converge."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest

from controller import sim
from controller.demo import DemoConfig, run_demo

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

POLICY = {
    "inventory/tenants.yaml": """
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail, logistics]}
""",
    "inventory/groups.yaml": """
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-linux, tenant: acme}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-windows, tenant: acme}
spec: {selector: {os: windows}}
""",
    "policies/baselines.yaml": """
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: linux-security, tenant: acme}
spec:
  os: linux
  targets: {groups: [all-linux]}
  rules: [{classifications: [security], severities: [critical, important]}]
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: windows-security, tenant: acme}
spec:
  os: windows
  targets: {groups: [all-windows]}
  rules: [{classifications: [security, critical]}]
""",
    "policies/whitelists.yaml": """
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: windows-security, tenant: acme}
spec:
  targets: {groups: [all-windows]}
  patches: [{classifications: [security, critical], vendors: [microsoft]}]
""",
    "policies/windows.yaml": """
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: nightly-linux, tenant: acme}
spec:
  targets: {groups: [all-linux]}
  recurrence: {cron: "0 1 * * *"}
  timezone: Europe/Berlin
  duration: 6h
  approval: manual
  rollout: {maxConcurrent: 100%, maxFailures: 100%}
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: nightly-windows, tenant: acme}
spec:
  targets: {groups: [all-windows]}
  recurrence: {cron: "0 1 * * *"}
  timezone: Europe/Berlin
  duration: 6h
  approval: auto
  autoApprove: {releasedAfterDays: 0}
  rollout: {maxConcurrent: 100%, maxFailures: 100%}
""",
    "policies/scans.yaml": """
apiVersion: patchctl/v1
kind: ScanSchedule
metadata: {name: twice-daily}
spec: {targets: {selector: {os: linux}}, every: 12h}
""",
}


@pytest.fixture
def converging_example(tmp_path: Path) -> Path:
    example = tmp_path / "example"
    for name, text in POLICY.items():
        (example / name).parent.mkdir(parents=True, exist_ok=True)
        (example / name).write_text(text.lstrip(), encoding="utf-8")
    (example / "feeds").mkdir()
    shutil.copy(ROOT / "feeds" / "example-catalogue.json", example / "feeds")
    return example


def test_a_fleet_goes_from_enrolment_to_compliant(converging_example: Path, tmp_path: Path) -> None:
    """40 agents enrol and scan; Windows security patches are auto-approved in the nightly
    window, the Linux ones by a merged pull request; by day 4 every device is compliant."""
    work = tmp_path / "work"
    work.mkdir()
    result = run_demo(
        DemoConfig(
            example=converging_example,
            work_dir=work,
            devices=40,
            days=4,
            behaviour=sim.Behaviour(
                failure_rate=0.0, offline_rate=0.0, ramp_up=1800.0, missing_range=(3, 12)
            ),
        )
    )
    before = {name: counts.get("compliant", 0) for name, counts in result.before.compliance.items()}
    after = result.after.compliance
    assert {"Baseline acme/linux-security", "Baseline acme/windows-security"} == set(after)
    assert all(set(counts) == {"compliant"} for counts in after.values()), after
    assert sum(sum(c.values()) for c in after.values()) > sum(before.values())
    assert 40 == result.fleet["enrolled"]
    assert result.after.patch_status["installed"] > 0
    assert 0 == result.after.patch_status["failed"]
    # the merged pull request was applied: its revision is among those reconciled
    merge = git.Repo(result.repo).commit(result.approval["commit"])
    assert 2 == len(merge.parents)
    assert f"main@sha1:{merge.hexsha}" in result.revisions
    assert result.alerts.get("InstallComplete", 0) > 0
    assert "InstallFailed" not in result.alerts
