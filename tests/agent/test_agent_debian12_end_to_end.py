"""End to end on a real Debian 12 system: the bundled agent, run with the system's own
`python3-minimal` under chroot, enrols with a real `patchctl serve` on loopback, reports; the
controller's updates (from that system's own bookworm-security Packages index) equal what
`apt list --upgradable` shows from -security; a merged approval in an open window issues the
install job, the agent installs with the real apt, and the device ends compliant."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import debianroot
import git
import pytest
from servehelpers import (
    ReadApi,
    agent,
    approval,
    checked,
    commit,
    install_agent,
    merge,
    running,
    security_fleet,
)

from controller.testing import Serve

HOSTNAME = "deb12-e2e"
SECURITY_INDEX = "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def security_upgradable(root: Path) -> set[str]:
    """`name=version` of what `apt list --upgradable` shows from a -security suite."""
    listed = debianroot.chroot(root, "apt", "list", "--upgradable").stdout
    found = set()
    for line in listed.splitlines():
        match = re.match(r"^([^/\s]+)/(\S+) (\S+) ", line)
        if match and "-security" in match.group(2).split(",")[0]:
            found.add(f"{match.group(1)}={match.group(3)}")
    return found


def test_the_agent_patches_a_real_debian_12_system(debian12: Path, tmp_path: Path) -> None:
    """The bundled agent reports a real bookworm system, the controller's missing updates equal
    apt's security upgrades, and a merged approval gets them installed by apt: compliant."""
    started = time.monotonic()
    service = Serve(
        database_url=f"sqlite:///{tmp_path / 'patchctl.db'}", state_dir=tmp_path / "state"
    )
    repo = git.Repo.init(tmp_path / "policy", initial_branch="main")
    window_start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    commit(
        repo,
        security_fleet(
            group="debian-servers", baseline="debian-security", window_start=window_start
        ),
        "base",
    )
    expected = security_upgradable(debian12)
    assert expected, "the cached bookworm image has no security update left to install"
    index = str(debian12 / "var/lib/apt/lists" / SECURITY_INDEX)
    imported = checked(
        service.patchctl(
            "feed", "import", index, "--format", "deb-packages", "--release", "debian:12", "--json"
        )
    )
    enrolment, reader = service.token("enrollment", "acme/retail"), service.token("read", "acme")
    install_agent(debian12, tmp_path)

    with running(service, repo) as logs:
        read = ReadApi(service, reader)
        enrolled = agent(
            debian12,
            "enroll",
            "--server",
            service.base,
            "--enrollment-token",
            enrolment,
            "--hostname",
            HOSTNAME,
        )
        assert 0 == enrolled.returncode, enrolled.stderr
        device_id = read.device_id()
        first = agent(debian12, "run", "--once", "--reboot-command", "true")
        assert 0 == first.returncode, first.stderr
        computed = service.wait_for(
            "the controller's missing updates", lambda: read.missing(device_id, "feed")
        )
        assert expected == computed
        assert expected <= read.missing(device_id, "agent")

        approving = approval(
            name="debian-security-now",
            group="debian-servers",
            patches=sorted(computed),
            reason="bookworm-security updates (end-to-end test)",
        )
        merge(
            repo,
            {"policies/approvals/debian-security.yaml": approving},
            "approve bookworm-security",
        )
        job = service.wait_for("the install job", lambda: read.install_jobs(device_id))[0]
        assert sorted(computed) == sorted(job["patchIds"])
        install_started = time.monotonic()
        second = agent(debian12, "run", "--once", "--reboot-command", "true")
        install_seconds = time.monotonic() - install_started
        assert 0 == second.returncode, second.stdout + second.stderr
        assert set() == expected & security_upgradable(debian12)
        service.wait_for("a compliant device", lambda: read.compliance(device_id) == ["compliant"])
        finished = service.wait_for(
            "the finished install job",
            lambda: [
                j for j in read.install_jobs(device_id) if j["state"] in ("succeeded", "failed")
            ],
        )[0]
        status = json.loads(agent(debian12, "status", "--json").stdout)
    journal = json.loads(
        (debian12 / "var/lib/patchctl-agent/jobs" / f"{job['id']}.json").read_text()
    )
    assert "succeeded" == finished["state"]
    assert 0 == status["queuedEvents"]
    assert [] == [line for line in (*logs, enrolled.stdout, enrolled.stderr) if enrolment in line]
    summary = re.findall(
        r"\d+ upgraded, \d+ newly installed, \d+ to remove and \d+ not upgraded",
        journal["result"].get("output", ""),
    )
    print(  # noqa: T201 - the figures of the run, for the record (pytest -s / -rP)
        json.dumps(
            {
                "updates": len(expected),
                "ids": sorted(expected),
                "feedImport": json.loads(imported.stdout),
                "installSeconds": round(install_seconds, 1),
                "totalSeconds": round(time.monotonic() - started, 1),
                "aptSummary": summary[-1:],
            },
            indent=2,
        )
    )
