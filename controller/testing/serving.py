"""A real `patchctl serve` process for end-to-end tests: a free loopback port, tokens made by
the real `token create` command, and a clean stop that hands back the logs.

`PATCHCTL` is the command line that starts patchctl with this interpreter; `PROJECT_ROOT` the
source checkout this package was imported from (the working directory of the processes).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PATCHCTL = [sys.executable, "-m", "controller.cli"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOG_TAIL = 4000  # characters of the service's log a timed-out wait shows


class Serve:
    """`patchctl serve` on a free port, over one database and state directory.

    `base` is its URL (`http://127.0.0.1:<port>`); its stderr (JSON log lines) goes to a file
    beside `state_dir`, returned by `stop()`. Failures to start or to see what `wait_for`
    waits for raise `AssertionError`, which a test runner reports as a failure.
    """

    def __init__(self, *, database_url: str, state_dir: Path, cwd: Path = PROJECT_ROOT) -> None:
        self.database_url = database_url
        self.state_dir = state_dir
        self.cwd = cwd
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[str] | None = None
        # a file, not a pipe: a pipe nobody reads fills up and stalls a chatty server
        self.log_path = state_dir.parent / f"serve-{self.base.rpartition(':')[2]}.log"

    def patchctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a patchctl command on the same database and state directory."""
        return subprocess.run(
            [*PATCHCTL, *args, "--db", self.database_url, "--state-dir", str(self.state_dir)],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def token(self, kind: str, tenant: str) -> str:
        """A new token secret of `kind` (enrollment, api, admin ...) for `tenant`."""
        done = self.patchctl("token", "create", "--tenant", tenant, "--kind", kind, "--json")
        assert 0 == done.returncode, done.stderr
        secret: str = json.loads(done.stdout)["token"]
        return secret

    def start(self, *args: str) -> None:
        """Start serving (extra `args` go to `patchctl serve`); return once /healthz answers
        200, within 30 s."""
        with self.log_path.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [
                    *PATCHCTL,
                    "serve",
                    "--listen",
                    self.base.removeprefix("http://"),
                    "--db",
                    self.database_url,
                    "--state-dir",
                    str(self.state_dir),
                    "--log-format",
                    "json",
                    *args,
                ],
                cwd=self.cwd,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = f"serve exited: {self.stop()}"
                raise AssertionError(message)
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        message = "patchctl serve did not answer /healthz within 30 s"
        raise AssertionError(message)

    def get(self, path: str, token: str) -> Any:
        """The JSON body of `GET path` with a bearer `token`, asserting status 200."""
        answer = httpx.get(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert 200 == answer.status_code, answer.text
        return answer.json()

    def wait_for(self, what: str, check: Callable[[], Any], *, timeout: float = 45) -> Any:
        """Poll `check` until it returns something truthy; fail naming `what` after `timeout`,
        with the service's last log lines (what it did meanwhile: a rare timeout in CI is
        otherwise a failure with nothing to read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.3)
        try:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:]
        except OSError:
            tail = "(no log)"
        raise AssertionError(f"timed out waiting for {what}; the service's last log:\n{tail}")

    def stop(self) -> str:
        """Stop with SIGTERM; the process's stderr (JSON log lines)."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log_path.read_text(encoding="utf-8")
