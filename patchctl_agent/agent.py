"""The agent's work: reports, jobs and the loop, over a backend, a controller and a state dir.

Jobs (DESIGN.md §4): every job is journalled in the state directory before each step, and every
event goes through the outbox, so that

- a controller that is down delays events but never loses or reorders them (they carry `seq`,
  so a replay is harmless);
- an agent that restarts mid-job reports that job `failed` with the reason ("interrupted while
  installing"), or, when it stopped for the job's own reboot, finishes it with the results it
  had journalled before rebooting.

Install jobs go acked → downloading → installing → rebooting (when the job's reboot option and
the OS signal say so) → succeeded | failed, then the agent rescans and reports, so that the
controller confirms each install with a scan.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

from patchctl_agent import AGENT_VERSION, procs, protocol, wire
from patchctl_agent.backends import FAILED, Backend, PatchResult, ScanResult
from patchctl_agent.state import State

DEFAULT_REBOOT_COMMAND = "shutdown /r /t 60" if sys.platform == "win32" else "systemctl reboot"
UNFINISHED = ("acked", "downloading", "installing")
# The longest wait the agent takes, in seconds (agent.conf's durations, the controller's poll
# interval): a week. Python waits for a command with poll(), whose timeout in milliseconds
# overflows a C int at about 24.8 days (OverflowError), and time.sleep() refuses infinity.
MAX_SECONDS = 7 * 24 * 3600


class Settings(NamedTuple):
    """How the agent behaves; every field has an `agent.conf` key and most a command option."""

    reboot_command: str = DEFAULT_REBOOT_COMMAND
    install_timeout: float = 3600.0  # seconds for one download or install
    script_timeout: float = 600.0  # seconds, when the script does not say
    scan_interval: float = 6 * 3600.0  # seconds between full scans in `run`
    max_backoff: float = 600.0  # seconds, the longest wait after failed calls
    role: str = "server"
    labels: dict[str, str] = {}  # noqa: RUF012 - never mutated


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def backoff(failures: int, *, cap: float, rng: random.Random) -> float:
    """Seconds to wait after `failures` failed attempts: exponential from 5 s up to `cap`, with
    full jitter (uniform between half and all of it) so a fleet does not retry in step."""
    ceiling = min(cap, 5.0 * (2 ** min(failures - 1, 16)))
    return rng.uniform(ceiling / 2, ceiling)


class Agent:
    """One enrolled agent."""

    def __init__(  # noqa: PLR0913 - the agent's whole context, keyword-only
        self,
        *,
        state: State,
        backend: Backend,
        controller: protocol.Controller,
        device_id: str,
        hostname: str,
        settings: Settings,
        runner: procs.Runner = procs.run,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),  # noqa: T201
        read_only: bool = False,
    ) -> None:
        self.state = state
        self.backend = backend
        self.controller = controller
        self.device_id = device_id
        self.hostname = hostname
        self.settings = settings
        self.run_command = runner
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.log = log
        self.read_only = read_only  # `scan`: write nothing, not even a made-up machine id
        self.poll_interval = 60.0
        self.failed_jobs = 0
        self.last_scan_at = 0.0

    # --- reports ------------------------------------------------------------------------

    def facts(self, scan: ScanResult | None = None) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "hostname": self.hostname,
            "os": self.backend.os_info().to_json(),
            "role": self.settings.role,
            "labels": dict(self.settings.labels),
            "agentVersion": AGENT_VERSION,
        }
        machine = machine_identity(self.backend, self.state, create=not self.read_only)
        if machine:
            facts["machineId"] = machine
        uptime = read_uptime()
        if uptime is not None:
            facts["uptime"] = uptime
        if scan is not None and scan.inventory is not None and scan.inventory.kernel:
            facts["kernel"] = scan.inventory.kernel
        custom = {k: v for k, v in (scan.facts if scan else {}).items() if v is not None}
        if custom:
            facts["custom"] = custom
        return facts

    def report_body(self, scan: ScanResult | None) -> dict[str, Any]:
        body: dict[str, Any] = {"facts": self.facts(scan)}
        if scan is not None:
            body["scan"] = {
                "scannedAt": utc_now(),
                "rebootRequired": scan.reboot_required,
                "missing": [u.to_json() for u in scan.missing],
                "installed": [{"id": i} for i in scan.installed],
            }
            if scan.inventory is not None and scan.inventory.packages:
                body["inventory"] = scan.inventory.to_json()
        return body

    def report(self, *, scan: bool) -> dict[str, Any]:
        """Send a heartbeat, with a fresh scan when `scan`."""
        result = self.backend.scan() if scan else None
        answer = self.controller.report(self.device_id, self.report_body(result))
        if scan:
            self.last_scan_at = time.time()
        self.take_poll_interval(answer)
        return answer

    # --- events -------------------------------------------------------------------------

    def emit(self, journal: dict[str, Any], state: str, **extra: Any) -> None:
        """Journal then queue one event of the job, and try to deliver the queue."""
        journal["seq"] = int(journal.get("seq", 0)) + 1
        journal["phase"] = state if state not in ("succeeded", "failed") else "finished"
        if journal["phase"] == "finished":
            journal["finishedAt"] = utc_now()
        body: dict[str, Any] = {"state": state, "seq": journal["seq"]}
        body.update({k: v for k, v in extra.items() if v is not None})
        if journal["phase"] == "finished":
            journal["result"] = body  # kept for `status` and for the operator
        self.state.save_journal(journal)
        self.state.enqueue({"jobId": journal["job"]["id"], "body": body})
        self.log(f"job {journal['job']['id']}: {state}")
        try:
            self.flush()
        except (wire.WireError, protocol.RefusedError) as exc:
            # the job carries on; its events wait for the controller (or a new device token)
            self.log(f"{self.state.outbox_size()} event(s) queued: {exc}")

    def flush(self) -> int:
        """Deliver queued events in order; WireError (and the rest stays queued) when the
        controller cannot be reached. An event the controller refuses (the job is gone or
        already finished) is dropped with a log line: retrying it would never succeed. A
        refused token (401, 403) is not the event's fault: the event stays, the error rises."""
        delivered = 0
        for path, item in self.state.outbox():
            try:
                self.controller.event(str(item["jobId"]), item["body"])
            except protocol.RefusedError as exc:
                if exc.status in (401, 403):
                    raise
                self.log(f"event {item['body'].get('state')} of job {item['jobId']} dropped: {exc}")
            path.unlink()
            delivered += 1
        return delivered

    # --- jobs ---------------------------------------------------------------------------

    def poll_and_run(self) -> int:
        """Poll once and run every delivered job to completion; the number of jobs run."""
        answer = self.controller.jobs(self.device_id)
        self.take_poll_interval(answer)
        ran = 0
        for job in answer.get("jobs") or []:
            if not isinstance(job, dict) or not job.get("id"):
                continue
            known = self.state.journal(str(job["id"]))
            if known is not None:
                continue  # at-least-once delivery: already taken (its events are queued)
            self.run_job(job)
            ran += 1
        return ran

    def run_job(self, job: dict[str, Any]) -> None:
        journal: dict[str, Any] = {"job": job, "seq": 0, "startedAt": utc_now()}
        self.emit(journal, "acked")
        kind = job.get("kind")
        deadline = job.get("deadline")
        if past(deadline):
            self._finish(journal, "failed", output="the job's deadline passed before it started")
            return
        handler = {"install": self._install, "script": self._script, "scan": self._scan_job}.get(
            str(kind)
        )
        if handler is None:
            self._finish(journal, "failed", output=f"unknown job kind {kind!r}")
            return
        try:
            handler(journal)
        except Exception as exc:  # noqa: BLE001 - a job never stays unfinished: say why it failed
            if journal.get("phase") != "finished":
                patches = [str(p) for p in job.get("patches") or []]
                reason = f"the agent could not run the job: {exc}"
                results = [PatchResult(p, FAILED, reason).to_json() for p in patches]
                self._finish(journal, "failed", patches=results, output=f"reason: {reason}")

    def _scan_job(self, journal: dict[str, Any]) -> None:
        self.report(scan=True)
        self._finish(journal, "succeeded", output="scan reported")

    def _script(self, journal: dict[str, Any]) -> None:
        payload = journal["job"].get("payload") or {}
        script = payload.get("script") or (journal["job"].get("scripts") or {}).get("run")
        if not isinstance(script, dict):
            self._finish(journal, "failed", output="the script job carries no script")
            return
        self.emit(journal, "installing")  # the protocol's state for "running the script"
        ok, output = self._run_script(script)
        self._finish(journal, "succeeded" if ok else "failed", output=output)

    def _install(self, journal: dict[str, Any]) -> None:
        job = journal["job"]
        patches = [str(p) for p in job.get("patches") or []]
        payload = job.get("payload") or {}
        scripts = job.get("scripts") or {}
        outputs: list[str] = []
        pre = payload.get("preScript") or scripts.get("pre")
        if isinstance(pre, dict):
            ok, output = self._run_script(pre)
            outputs.append(output)
            if not ok:
                self._fail_all(journal, patches, "the pre-script failed", outputs)
                return
        self.emit(journal, "downloading")
        self.backend.refresh()
        fetched = self.backend.download(patches, timeout=self.settings.install_timeout)
        outputs.append(section("download", fetched.output))
        if not fetched.ok:
            self._fail_all(journal, patches, f"download failed: {fetched.reason}", outputs)
            return
        self.emit(journal, "installing")
        outcome = self.backend.install(patches, timeout=self.settings.install_timeout)
        outputs.append(section("install", outcome.output))
        results = list(outcome.results)
        failed = not outcome.ok or any(r.result == FAILED for r in results)
        post = payload.get("postScript") or scripts.get("post")
        if isinstance(post, dict):
            ok, output = self._run_script(post)
            outputs.append(output)
            failed = failed or not ok
            if not ok:
                outputs.insert(0, "reason: the post-script failed")
        if failed and outcome.reason:
            outputs.insert(0, f"reason: {outcome.reason}")
        reboot_required = self.backend.reboot_pending()
        final: dict[str, Any] = {
            "state": "failed" if failed else "succeeded",
            "patches": [r.to_json() for r in results],
            "rebootRequired": reboot_required,
            "output": procs.truncate("\n".join(o for o in outputs if o)),
        }
        option = job.get("reboot") or payload.get("reboot") or "if-required"
        if option == "always" or (option == "if-required" and reboot_required):
            journal["final"] = final
            self.emit(journal, "rebooting", rebootRequired=reboot_required)
            done = self.run_command(shell_args(self.settings.reboot_command), timeout=120)
            if done.code != 0:
                final["state"] = "failed"
                final["output"] = procs.truncate(
                    f"reason: the reboot command failed (exit {done.code}): "
                    f"{done.output.strip()[-500:]}\n{final['output']}"
                )
        self._finish(journal, **final)
        self._rescan()

    def _fail_all(
        self, journal: dict[str, Any], patches: Sequence[str], reason: str, outputs: list[str]
    ) -> None:
        results = [PatchResult(p, FAILED, reason).to_json() for p in patches]
        text = procs.truncate("\n".join([f"reason: {reason}", *outputs]))
        self._finish(journal, "failed", patches=results, output=text)

    def _finish(self, journal: dict[str, Any], state: str, **extra: Any) -> None:
        if state == "failed":
            self.failed_jobs += 1
        journal.pop("final", None)
        self.emit(journal, state, **extra)

    def _rescan(self) -> None:
        """Installs are confirmed by a scan: report one right after the job."""
        try:
            self.report(scan=True)
        except wire.WireError as exc:
            self.log(f"the rescan after the job could not be reported yet: {exc}")

    def _run_script(self, script: dict[str, Any]) -> tuple[bool, str]:
        name = str(script.get("name") or "script")
        shell = str(script.get("shell") or "sh")
        timeout = float(script.get("timeoutSeconds") or self.settings.script_timeout)
        codes = script.get("successCodes") or [0]
        args = {
            "bash": ["bash", "-s"],
            "sh": ["sh", "-s"],
            "powershell": ["powershell", "-NoProfile", "-NonInteractive", "-Command", "-"],
        }.get(shell)
        if args is None:
            return False, f"{name}: unsupported shell {shell!r}"
        done = self.run_command(args, timeout=timeout, stdin=str(script.get("content") or ""))
        if done.timed_out:
            return False, section(f"{name} (timed out after {timeout:.0f} s)", done.output)
        ok = done.code in codes
        return ok, section(f"{name} (exit {done.code})", done.output)

    # --- restarts -----------------------------------------------------------------------

    def resume(self) -> int:
        """Finish the jobs a previous run left: a job stopped for its own reboot sends the
        results it journalled; any other unfinished job is reported failed with the reason."""
        resumed = 0
        for journal in self.state.journals():
            phase = journal.get("phase")
            if phase == "rebooting" and isinstance(journal.get("final"), dict):
                final = journal["final"]
                final["rebootRequired"] = self.backend.reboot_pending()
                self._finish(journal, **final)
            elif phase in UNFINISHED:
                patches = [str(p) for p in journal["job"].get("patches") or []]
                reason = f"interrupted: the agent stopped while the job was {phase}"
                results = [PatchResult(p, FAILED, reason).to_json() for p in patches]
                self._finish(journal, "failed", patches=results, output=f"reason: {reason}")
            else:
                continue
            resumed += 1
        if resumed:
            self._rescan()
        return resumed

    # --- the loop -----------------------------------------------------------------------

    def cycle(self, *, scan: bool) -> int:
        """Deliver queued events, report, poll and run jobs; the number of jobs run."""
        self.flush()
        self.report(scan=scan)
        return self.poll_and_run()

    def run(self, *, once: bool, should_stop: Callable[[], bool] = lambda: False) -> int:
        """`--once`: one full cycle, then the exit code; otherwise until `should_stop()`."""
        failures = 0
        self.resume()
        while True:
            due = time.time() - self.last_scan_at >= self.settings.scan_interval
            try:
                self.cycle(scan=due)
                failures = 0
                wait = self.poll_interval * self.rng.uniform(0.9, 1.1)
            except wire.WireError as exc:
                if once:
                    self.log(f"controller unreachable: {exc}")
                    return 3
                failures += 1
                wait = backoff(failures, cap=self.settings.max_backoff, rng=self.rng)
                self.log(f"controller unreachable ({exc}); retrying in {wait:.0f} s")
            self.state.forget_finished()
            if once:
                return 1 if self.failed_jobs else 0
            if should_stop():
                return 0
            self.sleep(wait)

    def take_poll_interval(self, answer: dict[str, Any]) -> None:
        """Wait `pollInterval` seconds between cycles (an answer's, or the enrolment's) when the
        agent can: a number more than 0 and at most MAX_SECONDS; otherwise keep the last one."""
        value = answer.get("pollInterval")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if 0 < value <= MAX_SECONDS:
            self.poll_interval = float(value)


def section(title: str, output: str) -> str:
    return f"--- {title} ---\n{output.rstrip()}" if output.strip() else f"--- {title} ---"


def shell_args(command: str) -> list[str]:
    """The command line of a configured command (run by the system shell)."""
    if sys.platform == "win32":
        return ["cmd", "/c", command]
    return ["/bin/sh", "-c", command]


def past(deadline: object) -> bool:
    """Whether an ISO 8601 deadline (`2026-11-30T12:00:00Z`, with an offset) has passed; a
    missing or unreadable one has not (the controller expires jobs itself)."""
    if not isinstance(deadline, str) or not deadline:
        return False
    try:  # Python 3.9's fromisoformat does not read "Z"
        when = dt.datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when < dt.datetime.now(dt.timezone.utc)


def read_uptime() -> int | None:
    try:
        with open("/proc/uptime") as handle:  # noqa: PTH123
            return int(float(handle.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return None


def machine_identity(backend: Backend, state: State, *, create: bool = True) -> str:
    """The OS's machine id, else the one the agent made up and kept in its state dir (made now
    when `create`; otherwise empty, for commands that must change nothing)."""
    return backend.machine_id() or state.machine_id(create=create)


def default_hostname() -> str:
    return socket.gethostname().split(".")[0] if os.name == "nt" else socket.gethostname()
