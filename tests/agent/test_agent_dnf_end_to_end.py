"""End to end with the real dnf: Debian's dnf 4.14 and rpm 4.18 drive an install root that says
it is Rocky Linux 9.4, fed by a local repository of rpms built here with an updateinfo.xml
advisory. The bundled agent (dnf backend) enrols with a real `patchctl serve`; the controller,
having imported that updateinfo.xml, computes the advisory dnf lists as missing; a merged
approval issues the install job; dnf installs it; the device is compliant."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import debianroot
import git
import pytest
import rpmrepo
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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

AGENT_CONF = f"""[agent]
backend = dnf
package_root = {rpmrepo.INSTALL_ROOT}
dnf_options = {" ".join(o for o in rpmrepo.OPTIONS if not o.startswith("--installroot"))}
"""


@pytest.fixture
def rpm_world(dnf_image: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A Debian root with dnf, and in it the install root and repository of `rpmrepo`."""
    root = debianroot.extract(dnf_image, tmp_path / "debian12-dnf")
    yield root, rpmrepo.make_world(root)
    shutil.rmtree(root, ignore_errors=True)  # 450 MB: not kept for pytest's last three runs


def dnf_advisories(root: Path) -> set[str]:
    """The advisory ids `dnf updateinfo list --updates` shows for the install root."""
    listed = rpmrepo.chroot(root, "dnf", *rpmrepo.OPTIONS, "-q", "updateinfo", "list", "--updates")
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_the_agent_patches_an_install_root_with_the_real_dnf(
    rpm_world: tuple[Path, Path], tmp_path: Path
) -> None:
    """The controller's missing advisories equal dnf's; an approved advisory is installed by
    dnf through the agent and the device ends compliant."""
    root, updateinfo = rpm_world
    service = Serve(
        database_url=f"sqlite:///{tmp_path / 'patchctl.db'}", state_dir=tmp_path / "state"
    )
    repo = git.Repo.init(tmp_path / "policy", initial_branch="main")
    window_start = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    commit(
        repo,
        security_fleet(group="rocky-servers", baseline="rocky-security", window_start=window_start),
        "base",
    )
    expected = dnf_advisories(root)
    assert {rpmrepo.ADVISORY} == expected
    checked(
        service.patchctl(
            "feed", "import", str(updateinfo), "--format", "updateinfo", "--release", "rocky:9"
        )
    )
    enrolment, reader = service.token("enrollment", "acme/retail"), service.token("read", "acme")
    install_agent(root, tmp_path)
    (root / "etc" / "patchctl-agent").mkdir(parents=True)
    (root / "etc" / "patchctl-agent" / "agent.conf").write_text(AGENT_CONF)

    with running(service, repo) as logs:
        read = ReadApi(service, reader)
        enrolled = agent(
            root,
            "enroll",
            "--server",
            service.base,
            "--enrollment-token",
            enrolment,
            "--hostname",
            "rocky9-e2e",
        )
        assert 0 == enrolled.returncode, enrolled.stderr
        device_id = read.device_id()
        first = agent(root, "run", "--once", "--reboot-command", "true")
        assert 0 == first.returncode, first.stderr
        computed = service.wait_for(
            "the controller's missing advisories", lambda: read.missing(device_id, "feed")
        )
        assert expected == computed
        assert expected | {"pctl-ok=1.1-1", "pctl-bad=1.1-1"} == read.missing(device_id, "agent")

        merge(
            repo,
            {
                "policies/approvals/pctl.yaml": approval(
                    name="pctl-advisory",
                    group="rocky-servers",
                    patches=sorted(computed),
                    reason="the test advisory (end-to-end test)",
                )
            },
            "approve the advisory",
        )
        job = service.wait_for("the install job", lambda: read.install_jobs(device_id))[0]
        assert sorted(computed) == job["patchIds"]
        second = agent(root, "run", "--once", "--reboot-command", "true")
        assert 0 == second.returncode, second.stdout + second.stderr
        assert set() == dnf_advisories(root)
        service.wait_for("a compliant device", lambda: read.compliance(device_id) == ["compliant"])
    assert [] == [text for text in (*logs, enrolled.stdout, enrolled.stderr) if enrolment in text]
    installed = rpmrepo.chroot(root, "rpm", *rpmrepo.RPM_OPTIONS, "-q", "pctl-lib", "pctl-ok")
    assert ["pctl-lib-1.1-1.noarch", "pctl-ok-1.0-1.noarch"] == installed.split()
