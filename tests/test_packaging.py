"""The package as an operator installs it: the wheel and sdist built from the source, the wheel
installed in a clean virtual environment, and `serve` started from it with the command line of
the shipped systemd unit (issue 16, item 1). The container file cannot be built here (no
container engine); docs/deployment.md says so."""

from __future__ import annotations

import json
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
from serving import free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "patchctl.service"
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache"
)

pytestmark = pytest.mark.slow


def exec_start(unit: Path) -> list[str]:
    """The unit's ExecStart as an argument list."""
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    pytest.fail(f"{unit} has no ExecStart")


def test_the_wheel_installs_and_serves_with_the_unit_command_line(tmp_path: Path) -> None:
    """`python -m build` makes a wheel and an sdist; the wheel installed in a fresh venv runs
    `patchctl init` (packaged templates) and `serve` as the unit starts it (packaged migrations),
    which applies the policy and answers /readyz."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == built.returncode, built.stderr[-3000:]
    wheels = sorted((tmp_path / "dist").glob("patchctl-*.whl"))
    sdists = sorted((tmp_path / "dist").glob("patchctl-*.tar.gz"))
    assert (1, 1) == (len(wheels), len(sdists))

    prefix = tmp_path / "opt-patchctl"
    venv.create(prefix, with_pip=True)
    installed = subprocess.run(
        [str(prefix / "bin" / "pip"), "install", "--quiet", str(wheels[0])],
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
