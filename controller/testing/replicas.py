"""For the crash and replica tests: `patchctl serve` processes that can be killed with -9 and
started again on the same port (logs appended to a file, since a pipe nobody reads would stall
a long-running server), and simulated agents that remember what the server acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from controller import sim
from controller.core.observed import JobState
from controller.store import Store, schema
from controller.testing.serving import PATCHCTL, PROJECT_ROOT, free_port


@dataclass
class Replica:
    """One `patchctl serve` process; its JSON log lines are appended to `log_path`."""

    args: list[str]
    base: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configure(
        cls,
        *,
        repo: Path,
        database_url: str,
        state_dir: Path,
        log_path: Path,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> Replica:
        listen = f"127.0.0.1:{port or free_port()}"
        args = [
            *PATCHCTL,
            "serve",
            "--repo",
            str(repo),
            "--listen",
            listen,
            "--db",
            database_url,
            "--state-dir",
            str(state_dir),
            "--log-format",
            "json",
            *extra,
        ]
        return cls(args, f"http://{listen}", log_path)

    def start(self) -> Replica:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=log
            )
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        message = f"patchctl serve did not answer /healthz within {timeout} s"
        raise AssertionError(message)

    def readyz(self) -> dict[str, Any] | None:
        """The readiness answer, or None when the process does not answer."""
        try:
            answer: dict[str, Any] = httpx.get(f"{self.base}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer

    def leads(self) -> bool:
        return bool((self.readyz() or {}).get("leader"))

    def kill(self) -> None:
        """kill -9: no handler runs, nothing is flushed or released."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def reap(self) -> None:
        """Kill the process if it still runs (test teardown, whatever happened)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON records of the log so far. A kill -9 can stop a process between a record
        and its newline, or in the middle of a record: the next process's first record then
        follows on the same line. Each line is read as the records it holds; a cut-off one
        is left out."""
        decoder = json.JSONDecoder()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        records: list[dict[str, Any]] = []
        for line in text.splitlines():
            start = 0 if line.startswith("{") else -1
            while start != -1:
                try:
                    record, end = decoder.raw_decode(line, start)
                except json.JSONDecodeError:
                    end = start + 1  # cut off: the next record, if any, starts further on
                else:
                    if isinstance(record, dict):
                        records.append(record)
                start = line.find("{", end)
        return records


def wait_for(predicate: Any, *, timeout: float, every: float = 0.2) -> float:
    """Seconds until `predicate()` was true; fails the test after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(every)
    message = f"not true within {timeout} s: {predicate}"
    raise AssertionError(message)


# --- agents that remember what was acknowledged ------------------------------------------------


@dataclass
class Acknowledged(httpx.AsyncBaseTransport):
    """The real HTTP transport, remembering each scan report and job event the server answered
    with 2xx: by then the server says it is stored."""

    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    scans: set[tuple[str, datetime]] = field(default_factory=set)  # (device, scannedAt)
    events: set[tuple[str, str, str]] = field(default_factory=set)  # (job, state, seq:<n>)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if 200 <= response.status_code < 300 and request.method == "POST":
            parts = request.url.path.strip("/").split("/")  # api v1 devices <id> report
            body = json.loads(request.content or b"{}")
            if parts[-1] == "report" and "scan" in body:
                scanned = datetime.fromisoformat(body["scan"]["scannedAt"])
                self.scans.add((parts[-2], scanned))
            elif parts[-1] == "events":
                self.events.add((parts[-2], body["state"], f"seq:{body['seq']}"))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Fleet:
    """Simulated agents over the real protocol, on a thread of their own, until `stop()` or
    for at most `duration` s."""

    server: str
    tokens: Mapping[str, str]
    devices: int
    duration: float
    seed: int = 5
    acknowledged: Acknowledged = field(default_factory=Acknowledged)
    stats: sim.Stats = field(default_factory=sim.Stats)
    thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _stop: asyncio.Event = field(init=False, repr=False)

    def start(self) -> Fleet:
        behaviour = sim.Behaviour(
            failure_rate=0.1,
            offline_rate=0.0,
            ramp_up=1.0,
            install_seconds=(0.2, 0.8),
            reboot_seconds=(0.2, 0.5),
            bandwidth_bytes_per_second=1e12,
            missing_range=(2, 6),
        )
        config = sim.FleetConfig(devices=self.devices, seed=self.seed, behaviour=behaviour)
        stop = asyncio.Event()
        run = sim.run_fleet(
            config,
            server=self.server,
            enrollment_tokens=self.tokens,
            clock=sim.ScaledClock(speed=1.0),
            duration=self.duration,
            transport=self.acknowledged,
            stats=self.stats,
            stop=stop,
        )
        ready = threading.Event()

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), stop
            ready.set()
            await run

        self.thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop every agent after its current step, and wait for them."""
        assert self.thread is not None
        if self.thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)
        assert not self.thread.is_alive()


# --- what the store must show afterwards ------------------------------------------------------


def lost_acknowledgements(store: Store, acknowledged: Acknowledged) -> dict[str, list[Any]]:
    """Acknowledged scans and job events the store does not have (empty lists: none lost)."""
    s, e = schema.scans.c, schema.job_events.c
    with store.read() as conn:
        scans = set(conn.execute(sa.select(s.device_id, s.scanned_at)))
        events = set(conn.execute(sa.select(e.job_id, e.state, e.dedupe_key)))
    return {
        "scans": sorted(acknowledged.scans - scans),
        "events": sorted(acknowledged.events - events),
    }


def duplicated_work(store: Store) -> dict[str, list[Any]]:
    """Work done twice, by kind (empty lists: none): a patch in two install jobs of one window
    occurrence, two jobs in flight on one device, two alerts of a kind on one job and patch)."""
    j, a = schema.jobs.c, schema.alerts.c
    with store.read() as conn:
        installs = conn.execute(
            sa.select(j.device_id, j.window_key, j.patch_ids).where(j.kind == "install")
        )
        in_flight = conn.execute(
            sa.select(j.device_id, sa.func.count())
            .where(j.state.in_([state.value for state in JobState if state.in_flight]))
            .group_by(j.device_id)
            .having(sa.func.count() > 1)
        )
        alerts = conn.execute(sa.select(a.kind, a.device_id, a.details))
        patch_jobs: dict[tuple[str, str | None, str], int] = {}
        for device, window, patches in installs:
            for patch in patches:
                key = (device, window, patch)
                patch_jobs[key] = patch_jobs.get(key, 0) + 1
        alert_count: dict[tuple[str, str | None, str | None, str | None], int] = {}
        for kind, device, details in alerts:
            key2 = (kind, device, (details or {}).get("job"), (details or {}).get("patch"))
            alert_count[key2] = alert_count.get(key2, 0) + 1
    return {
        "patchInstalledTwice": sorted(k for k, n in patch_jobs.items() if n > 1),
        "devicesWithTwoJobsInFlight": sorted(in_flight),
        "alertsRaisedTwice": sorted(
            (k for k, n in alert_count.items() if n > 1 and k[2] is not None), key=str
        ),
    }
