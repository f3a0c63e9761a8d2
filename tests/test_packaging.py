"""The package as an operator installs it: the wheel and sdist built from the source (`make
dist`), the wheel installed in a clean virtual environment, and `serve` started from it with the
command line of the shipped systemd unit (issue 16, item 1); and the shipped CI examples run
from their own install line with that wheel as `PATCHCTL_PACKAGE` (issue 15, item 5). The
container file cannot be built here (no container engine); docs/deployment.md says so.

Installing the wheel's dependencies uses pip's configured index, as an operator's host does."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest
from ciexamples import CI_ENVIRONMENT, example_shell

from controller.testing import PolicyRepo, free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "patchctl.service"
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache"
)

# building and installing with pip takes minutes on a busy machine (the build is shared)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def exec_start(unit: Path) -> list[str]:
    """The unit's ExecStart as an argument list."""
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    pytest.fail(f"{unit} has no ExecStart")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built by `python -m build` from a copy of the source, once per module."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == built.returncode, built.stderr[-3000:]
    wheels = sorted((work / "dist").glob("patchctl-*.whl"))
    sdists = sorted((work / "dist").glob("patchctl-*.tar.gz"))
    assert (1, 1) == (len(wheels), len(sdists))
    return wheels[0], sdists[0]


def test_the_wheel_installs_and_serves_with_the_unit_command_line(
    dist: tuple[Path, Path], tmp_path: Path
) -> None:
    """`python -m build` makes a wheel and an sdist; the wheel installed in a fresh venv runs
    `patchctl init` (packaged templates) and `serve` as the unit starts it (packaged migrations),
    which applies the policy and answers /readyz."""
    prefix = tmp_path / "opt-patchctl"
    venv.create(prefix, with_pip=True)
    installed = subprocess.run(
        [str(prefix / "bin" / "pip"), "install", "--quiet", str(dist[0])],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert 0 == installed.returncode, installed.stderr[-3000:]

    state, etc = tmp_path / "var-lib-patchctl", tmp_path / "etc-patchctl"
    state.mkdir()
    etc.mkdir()
    (etc / "patchctl.toml").write_text('[serve]\ninterval = "1m"\n', encoding="utf-8")
    patchctl = str(prefix / "bin" / "patchctl")
    init = subprocess.run(
        [patchctl, "init", str(state / "policies")], capture_output=True, text=True, check=False
    )
    assert 0 == init.returncode, init.stderr

    port = free_port()
    command = [
        part.replace("/opt/patchctl", str(prefix))
        .replace("/var/lib/patchctl", str(state))
        .replace("/etc/patchctl", str(etc))
        .replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        for part in exec_start(UNIT)
    ]
    assert command[0] == patchctl
    server = subprocess.Popen(command, cwd=state, stderr=subprocess.PIPE, text=True)
    try:
        ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if answer.status_code == 200 and answer.json().get("lastAppliedRevision"):
                    ready = answer.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        _, logs = server.communicate(timeout=30)
    assert ready is not None, logs[-3000:]
    assert ready["lastAppliedRevision"].startswith("main@sha1:")
    assert 0 == server.returncode, logs[-3000:]
    assert any(
        json.loads(line).get("event") == "serving"
        for line in logs.splitlines()
        if line.startswith("{")
    )
    assert (state / "patchctl.db").is_file()


APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: 2026-12-kernel, tenant: acme/retail}
spec:
  patches: [USN-7123-1]
  targets: {groups: [linux-web]}
  reason: December kernel fixes
"""


@pytest.mark.parametrize(("name", "head_label"), [("github", "pr-42"), ("gitlab", "mr-7")])
def test_ci_examples_install_the_wheel_and_plan(
    dist: tuple[Path, Path], tmp_path: Path, name: str, head_label: str
) -> None:
    """Each example's own install line, given the wheel as PATCHCTL_PACKAGE, installs patchctl
    in the runner's clean Python; the example's validate and plan lines then run with that
    installation, in a clone of a forge that holds the pull request only as its forge ref."""
    forge = PolicyRepo(tmp_path / "forge")
    forge.copy_example()
    forge.commit("the example repository")
    forge.write("policies/approvals/2026-12-kernel.yaml", APPROVAL)
    head = forge.commit("approve the kernel")
    forge.repo.git.reset("-q", "--hard", "HEAD~1")
    forge.repo.git.update_ref("refs/pull/42/head", head)
    forge.repo.git.update_ref("refs/merge-requests/7/head", head)
    checkout = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(forge.path), str(checkout)], check=True)

    runner = tmp_path / "runner-python"  # what setup-python or the python image gives the job
    venv.create(runner, with_pip=True)
    ours = str(Path(sys.executable).parent)  # the test's own environment must not leak in
    path = os.pathsep.join(
        [str(runner / "bin"), *(p for p in os.environ["PATH"].split(os.pathsep) if p != ours)]
    )
    environment = {
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "SSL_", "http", "HTTP"))},
        "PATH": path,
        "HOME": str(tmp_path),
        "PATCHCTL_PACKAGE": str(dist[0]),
        "PATCHCTL_SERVER": "",
        "PATCHCTL_STATE_DIR": str(tmp_path / "state"),
        **CI_ENVIRONMENT[name],
    }
    install, shell = example_shell(name)
    results = [
        subprocess.run(
            ["bash", "-euc", lines],
            cwd=checkout,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        for lines in (install, "command -v patchctl", shell)
    ]
    assert [0, 0, 0] == [r.returncode for r in results], [r.stderr[-2000:] for r in results]
    assert str(runner / "bin" / "patchctl") == results[1].stdout.strip()
    plan = (checkout / "plan.md").read_text(encoding="utf-8").splitlines()
    assert plan[0].startswith("### patchctl plan: `main@sha1:")
    assert plan[0].endswith(f"→ `{head_label}@sha1:{head}`")
    assert "- approves **USN-7123-1**" in plan
