"""The real controller for the end-to-end agent tests: `patchctl` commands and `patchctl serve`
as subprocesses on loopback, a policy repository in tmp_path, and the bundled agent run inside
a Debian root with `chroot`."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import debianroot
import git
import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
PATCHCTL = [sys.executable, "-m", "controller.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def patchctl(
    *args: str, db: str | None = None, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a patchctl command (against the test's store when `db` and `state` are given)."""
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
    patchctl("agent", "bundle", str(tmp_path / "bundle"))
    (root / "patchctl-agent.pyz").write_bytes((tmp_path / "bundle/patchctl-agent.pyz").read_bytes())


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float = 90.0) -> Any:
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


def merge(repo: git.Repo, files: dict[str, str], message: str) -> None:
    """Commit `files` on a branch and merge it into main with a merge commit, as a pull
    request's merge does."""
    repo.git.checkout("-b", "pull-request")
    commit(repo, files, message)
    repo.git.checkout("main")
    repo.git.merge("--no-ff", "pull-request", "-m", f"Merge pull request #1: {message}")
    repo.git.branch("-d", "pull-request")


class Service:
    """A running `patchctl serve`: its URL, its stderr log once stopped."""

    def __init__(self, base: str, process: subprocess.Popen[str]) -> None:
        self.base = base
        self.process = process
        self.logs = ""

    def healthy(self) -> bool:
        assert self.process.poll() is None, (
            self.process.stderr.read() if self.process.stderr else ""
        )
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def serve(repo: git.Repo, *, db: str, state: Path) -> Iterator[Service]:
    """`patchctl serve` on a free loopback port, polling agents every 5 s, stopped with SIGTERM."""
    base = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
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
    service = Service(base, process)
    try:
        wait_for("/healthz", service.healthy, timeout=30)
        yield service
    finally:
        process.send_signal(signal.SIGTERM)
        _, service.logs = process.communicate(timeout=60)
    assert 0 == process.returncode, service.logs[-3000:]


def tokens(*, db: str, state: Path) -> tuple[str, str]:
    """An enrolment token for acme/retail and a read token for acme."""
    enrolment = patchctl("token", "create", "--tenant", "acme/retail", "--json", db=db, state=state)
    reader = patchctl(
        "token", "create", "--tenant", "acme", "--kind", "read", "--json", db=db, state=state
    )
    return json.loads(enrolment.stdout)["token"], json.loads(reader.stdout)["token"]


class ReadApi:
    """What the test asks the controller, through its read API."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def device_id(self) -> str:
        return str(self.client.get("/api/v1/devices").json()["devices"][0]["id"])

    def missing(self, device_id: str, source: str) -> set[str]:
        """The ids of the device's missing patches from `source` (feed: the controller's own
        computation from the inventory; agent: what the agent reported)."""
        patches = self.client.get(f"/api/v1/devices/{device_id}").json()["patches"]
        return {p["id"] for p in patches if p["source"] == source and p["state"] == "missing"}

    def install_jobs(self, device_id: str) -> list[dict[str, Any]]:
        listed = self.client.get("/api/v1/jobs", params={"device": device_id}).json()["jobs"]
        return [j for j in listed if j["kind"] == "install"]

    def compliance(self, device_id: str) -> list[str]:
        rows = self.client.get("/api/v1/compliance", params={"device": device_id}).json()
        return [r["state"] for r in rows["compliance"]]
