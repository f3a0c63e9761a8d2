"""End to end: a real `patchctl serve` process on a real port, 50 simulated agents from the
real `patchctl simulate` command, checked through the read API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from controller.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
PATCHCTL = [sys.executable, "-m", "controller.cli"]
DEVICES = 50

pytestmark = pytest.mark.slow


def patchctl(*args: str, database_url: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PATCHCTL, *args, "--db", database_url, "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def token(kind: str, tenant: str, *, database_url: str, state_dir: Path) -> str:
    done = patchctl(
        "token",
        "create",
        "--tenant",
        tenant,
        "--kind",
        kind,
        "--json",
        database_url=database_url,
        state_dir=state_dir,
    )
    assert 0 == done.returncode, done.stderr
    secret: str = json.loads(done.stdout)["token"]
    return secret


def wait_until_healthy(base: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail("patchctl serve did not answer /healthz within 30 s")


def test_fifty_agents_enrol_and_report_through_serve(database_url: str, tmp_path: Path) -> None:
    """50 simulated agents enrol and report through `patchctl serve`; the read API shows them."""
    state = tmp_path / "state"
    retail = token("enrollment", "acme/retail", database_url=database_url, state_dir=state)
    logistics = token("enrollment", "acme/logistics", database_url=database_url, state_dir=state)
    reader = token("read", "acme", database_url=database_url, state_dir=state)
    base = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [
            *PATCHCTL,
            "serve",
            "--listen",
            base.removeprefix("http://"),
            "--db",
            database_url,
            "--state-dir",
            str(state),
            "--log-format",
            "json",
            "--no-reconcile",  # the protocol alone: no scan jobs, so one report per agent
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_healthy(base, server)
        simulated = subprocess.run(
            [
                *PATCHCTL,
                "simulate",
                "--devices",
                str(DEVICES),
                "--server",
                base,
                "--once",
                "--ramp-up",
                "0s",
                "--seed",
                "11",
                "--token",
                f"acme/retail={retail}",
                "--token",
                f"acme/logistics={logistics}",
                "--json",
                "--catalogue",
                str(ROOT / "feeds" / "example-catalogue.json"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        auth = {"Authorization": f"Bearer {reader}"}
        listed = httpx.get(f"{base}/api/v1/devices", headers=auth, timeout=10).json()["devices"]
        detail = httpx.get(f"{base}/api/v1/devices/{listed[0]['id']}", headers=auth, timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        _, logs = server.communicate(timeout=30)
    summary = json.loads(simulated.stdout)
    assert 0 == simulated.returncode, simulated.stderr
    assert (DEVICES, DEVICES, {}) == (summary["enrolled"], summary["reports"], summary["errors"])
    assert DEVICES == len(listed)
    assert {"acme/retail", "acme/logistics"} == {d["tenant"] for d in listed}
    assert all(d["lastScanAt"] for d in listed)
    assert detail.json()["patches"]
    assert 0 == server.returncode
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "enrolled" for line in lines)
    assert [] == [s for s in (retail, logistics, reader) if s in logs]
