"""End to end on a real Debian 12 system: the bundled agent, run with the system's own
`python3-minimal` under chroot, enrols with a real `patchctl serve` on loopback, reports; the
controller's updates (from that system's own bookworm-security Packages index) equal what
`apt list --upgradable` shows from -security; a merged approval in an open window issues the
install job, the agent installs with the real apt, and the device ends compliant."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import debianroot
import git
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHCTL = [sys.executable, "-m", "controller.cli"]
HOSTNAME = "deb12-e2e"
SECURITY_INDEX = "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

POLICY = {
    "inventory/tenants.yaml": """
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
""",
    "inventory/groups.yaml": """
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: debian-servers, tenant: acme}
spec: {selector: {os: linux}}
""",
    "policies/baselines/debian-security.yaml": """
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: debian-security, tenant: acme}
spec:
  os: linux
  targets: {groups: [debian-servers]}
  rules: [{classifications: [security]}]
""",
}

WINDOW = """
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {{name: now, tenant: acme}}
spec:
  targets: {{groups: [debian-servers]}}
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
metadata: {{name: debian-security-now, tenant: acme}}
spec:
  patches: {patches}
  targets: {{groups: [debian-servers]}}
  reason: bookworm-security updates (end-to-end test)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def patchctl(
    *args: str, db: str | None = None, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    store = ["--db", db, "--state-dir", str(state)] if db and state else []
    done = subprocess.run(
        [*PATCHCTL, *args, *store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    return done


def agent(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bundled agent inside the Debian system, with that system's python3."""
    return subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "/patchctl-agent.pyz", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=debianroot.ENV,
        check=False,
    )


def security_upgradable(root: Path) -> set[str]:
    """`name=version` of what `apt list --upgradable` shows from a -security suite."""
    listed = debianroot.chroot(root, "apt", "list", "--upgradable").stdout
    found = set()
    for line in listed.splitlines():
        match = re.match(r"^([^/\s]+)/(\S+) (\S+) ", line)
        if match and "-security" in match.group(2).split(",")[0]:
            found.add(f"{match.group(1)}={match.group(3)}")
    return found


def wait_for(what: str, probe: Any, *, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def commit(repo: git.Repo, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        path = Path(repo.working_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip(), encoding="utf-8")
    repo.index.add(list(files))
    repo.index.commit(message)


def test_the_agent_patches_a_real_debian_12_system(  # noqa: PLR0915 - one story, told in order
    debian12: Path, tmp_path: Path
) -> None:
    """The bundled agent reports a real bookworm system, the controller's missing updates equal
    apt's security upgrades, and a merged approval gets them installed by apt: compliant."""
    started = time.monotonic()
    state, db = tmp_path / "state", f"sqlite:///{tmp_path / 'patchctl.db'}"
    repo = git.Repo.init(tmp_path / "policy", initial_branch="main")
    window_start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    commit(
        repo, POLICY | {"policies/schedules/now.yaml": WINDOW.format(start=window_start)}, "base"
    )

    expected = security_upgradable(debian12)
    assert expected, "the cached bookworm image has no security update left to install"
    imported = patchctl(
        "feed",
        "import",
        str(debian12 / "var/lib/apt/lists" / SECURITY_INDEX),
        "--format",
        "deb-packages",
        "--release",
        "debian:12",
        "--json",
        db=db,
        state=state,
    )
    enrolment = json.loads(
        patchctl("token", "create", "--tenant", "acme/retail", "--json", db=db, state=state).stdout
    )["token"]
    reader = json.loads(
        patchctl(
            "token", "create", "--tenant", "acme", "--kind", "read", "--json", db=db, state=state
        ).stdout
    )["token"]
    patchctl("agent", "bundle", str(tmp_path / "bundle"))
    (debian12 / "patchctl-agent.pyz").write_bytes(
        (tmp_path / "bundle/patchctl-agent.pyz").read_bytes()
    )

    base = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [
            *PATCHCTL,
            "serve",
            "--repo",
            repo.working_dir,
            "--branch",
            "main",
            "--listen",
            base.removeprefix("http://"),
            "--db",
            db,
            "--state-dir",
            str(state),
            "--poll-interval",
            "5s",
            "--interval",
            "10s",
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    read = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    try:
        wait_for("/healthz", lambda: _healthy(base, server), timeout=30)
        enrolled = agent(
            debian12,
            "enroll",
            "--server",
            base,
            "--enrollment-token",
            enrolment,
            "--hostname",
            HOSTNAME,
        )
        assert 0 == enrolled.returncode, enrolled.stderr
        device_id = read.get("/api/v1/devices").json()["devices"][0]["id"]
        first = agent(debian12, "run", "--once", "--reboot-command", "true")
        assert 0 == first.returncode, first.stderr

        def feed_missing() -> set[str]:
            patches = read.get(f"/api/v1/devices/{device_id}").json()["patches"]
            return {p["id"] for p in patches if p["source"] == "feed" and p["state"] == "missing"}

        computed = wait_for("the controller's missing updates", feed_missing)
        agent_reported = {
            p["id"]
            for p in read.get(f"/api/v1/devices/{device_id}").json()["patches"]
            if p["source"] == "agent" and p["state"] == "missing"
        }
        assert expected == computed
        assert expected <= agent_reported

        commit(
            repo,
            {
                "policies/approvals/debian-security.yaml": APPROVAL.format(
                    patches=json.dumps(sorted(computed))
                )
            },
            "approve bookworm-security",
        )

        def install_job() -> list[dict[str, Any]]:
            listed = read.get("/api/v1/jobs", params={"device": device_id}).json()["jobs"]
            return [j for j in listed if j["kind"] == "install"]

        job = wait_for("the install job", install_job)[0]
        assert sorted(computed) == sorted(job["patchIds"])
        install_started = time.monotonic()
        second = agent(debian12, "run", "--once", "--reboot-command", "true")
        install_seconds = time.monotonic() - install_started
        assert 0 == second.returncode, second.stdout + second.stderr
        assert set() == expected & security_upgradable(debian12)

        def compliant() -> list[dict[str, Any]]:
            rows = read.get("/api/v1/compliance", params={"device": device_id}).json()["compliance"]
            return [r for r in rows if r.get("state") == "compliant"]

        wait_for("a compliant device", compliant)
        finished = wait_for(
            "the succeeded install job",
            lambda: [j for j in install_job() if j["state"] == "succeeded"],
        )[0]
        status = json.loads(agent(debian12, "status", "--json").stdout)
        journal = json.loads(
            (debian12 / "var/lib/patchctl-agent/jobs" / f"{job['id']}.json").read_text()
        )
    finally:
        read.close()
        server.send_signal(signal.SIGTERM)
        _, logs = server.communicate(timeout=60)
    assert 0 == server.returncode, logs[-3000:]
    assert enrolment not in logs
    assert enrolment not in enrolled.stdout + enrolled.stderr
    assert 0 == status["queuedEvents"]
    summary = re.findall(
        r"\d+ upgraded, \d+ newly installed, \d+ to remove and \d+ not upgraded",
        journal["result"].get("output", ""),
    )
    assert "succeeded" == finished["state"]
    print(  # noqa: T201 - the figures of the run, for the record (pytest -s / -rP)
        json.dumps(
            {
                "updates": len(expected),
                "ids": sorted(expected),
                "feedImport": json.loads(imported.stdout),
                "installSeconds": round(install_seconds, 1),
                "totalSeconds": round(time.monotonic() - started, 1),
                "aptSummary": summary,
            },
            indent=2,
        )
    )


def _healthy(base: str, server: subprocess.Popen[str]) -> bool:
    assert server.poll() is None, server.stderr.read() if server.stderr else ""
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
