"""The controller side of the end-to-end agent tests, on top of `serving.Serve` (the real
`patchctl serve` on loopback): a policy repository in tmp_path whose approvals arrive as merged
pull requests, the read API's view of one device, and the bundled agent run inside a Debian root
with `chroot`."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import debianroot
import git

from controller.testing import PATCHCTL, PROJECT_ROOT, Serve

if TYPE_CHECKING:
    from collections.abc import Iterator

TENANT = """
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
"""
GROUP = """
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {{name: {group}, tenant: acme}}
spec: {{selector: {{os: linux}}}}
"""
BASELINE = """
apiVersion: patchctl/v1
kind: Baseline
metadata: {{name: {baseline}, tenant: acme}}
spec:
  os: linux
  targets: {{groups: [{group}]}}
  rules: [{{classifications: [security]}}]
"""
WINDOW_NOW = """
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {{name: now, tenant: acme}}
spec:
  targets: {{groups: [{group}]}}
  recurrence: {{once: "{start}"}}
  timezone: UTC
  duration: 4h
  approval: manual
  reboot: if-required
  rollout: {{maxConcurrent: 100%, maxFailures: 100%}}
"""
APPROVAL = """
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: {name}, tenant: acme}}
spec:
  patches: {patches}
  targets: {{groups: [{group}]}}
  reason: {reason}
"""


def security_fleet(*, group: str, baseline: str, window_start: str) -> dict[str, str]:
    """The base commit of an end-to-end test: tenant acme, one group of every Linux device, a
    security baseline for it, and a manual window that opened at `window_start` (UTC)."""
    return {
        "inventory/tenants.yaml": TENANT,
        "inventory/groups.yaml": GROUP.format(group=group),
        f"policies/baselines/{baseline}.yaml": BASELINE.format(group=group, baseline=baseline),
        "policies/schedules/now.yaml": WINDOW_NOW.format(group=group, start=window_start),
    }


def approval(*, name: str, group: str, patches: list[str], reason: str) -> str:
    """An Approval of `patches` (a JSON list in YAML flow style) for `group`."""
    return APPROVAL.format(name=name, group=group, patches=json.dumps(patches), reason=reason)


def agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bundled agent inside the Debian root, with that system's python3."""
    return subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "/patchctl-agent.pyz", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=debianroot.ENV,
        check=False,
    )


def install_agent(root: Path, tmp_path: Path) -> None:
    """`patchctl agent bundle`, and the zipapp copied into the Debian root."""
    done = subprocess.run(
        [*PATCHCTL, "agent", "bundle", str(tmp_path / "bundle")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    (root / "patchctl-agent.pyz").write_bytes((tmp_path / "bundle/patchctl-agent.pyz").read_bytes())


def commit(repo: git.Repo, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        path = Path(repo.working_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip(), encoding="utf-8")
    repo.index.add(list(files))
    repo.index.commit(message)


def merge(repo: git.Repo, files: dict[str, str], message: str) -> None:
    """Commit `files` on a branch and merge it into main with a merge commit, as a pull
    request's merge does."""
    repo.git.checkout("-b", "pull-request")
    commit(repo, files, message)
    repo.git.checkout("main")
    repo.git.merge("--no-ff", "pull-request", "-m", f"Merge pull request #1: {message}")
    repo.git.branch("-d", "pull-request")


def checked(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert 0 == done.returncode, done.stdout + done.stderr
    return done


@contextlib.contextmanager
def running(service: Serve, repo: git.Repo) -> Iterator[list[str]]:
    """`serve` on `repo`'s main branch, agents polling every 5 s; the list gets its logs."""
    logs: list[str] = []
    service.start(
        "--repo", repo.working_dir, "--branch", "main", "--poll-interval", "5s", "--interval", "10s"
    )
    try:
        yield logs
    finally:
        logs.append(service.stop())
    assert service.process is not None
    assert 0 == service.process.returncode, logs[0][-3000:]


class ReadApi:
    """One device as the controller's read API shows it."""

    def __init__(self, service: Serve, token: str) -> None:
        self.service = service
        self.token = token

    def device_id(self) -> str:
        return str(self.service.get("/api/v1/devices", self.token)["devices"][0]["id"])

    def missing(self, device_id: str, source: str) -> set[str]:
        """The ids of the device's missing patches from `source` (feed: the controller's own
        computation from the inventory; agent: what the agent reported)."""
        patches = self.service.get(f"/api/v1/devices/{device_id}", self.token)["patches"]
        return {p["id"] for p in patches if p["source"] == source and p["state"] == "missing"}

    def install_jobs(self, device_id: str) -> list[dict[str, Any]]:
        listed = self.service.get(f"/api/v1/jobs?device={device_id}", self.token)["jobs"]
        return [j for j in listed if j["kind"] == "install"]

    def compliance(self, device_id: str) -> list[str]:
        rows = self.service.get(f"/api/v1/compliance?device={device_id}", self.token)
        return [r["state"] for r in rows["compliance"]]
