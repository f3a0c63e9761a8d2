"""Job execution: the event sequence, reboots through the configured command, pre/post scripts,
restarts mid-job, a controller that is down, backoff; over a real state directory in tmp_path,
real subprocesses for scripts and reboot commands, and an in-memory OS and controller."""

from __future__ import annotations

import random
import stat
from pathlib import Path
from typing import Any

import pytest
from agenthelpers import FakeController

from patchctl_agent import agent, procs
from patchctl_agent.backends import (
    FAILED,
    INSTALLED,
    Backend,
    BackendError,
    Inventory,
    OsInfo,
    Outcome,
    PatchResult,
    Update,
)
from patchctl_agent.protocol import RefusedError
from patchctl_agent.state import State


class MemoryOs(Backend):
    """An OS whose updates install in memory; `broken` ids fail, `reboot_after` sets the signal."""

    name = "memory"

    def __init__(
        self, missing: list[str], *, broken: tuple[str, ...] = (), reboot_after: bool = False
    ) -> None:
        self.missing = list(missing)
        self.broken = broken
        self.reboot_after = reboot_after
        self.rebooting = False
        self.installs: list[list[str]] = []

    def os_info(self) -> OsInfo:
        return OsInfo("linux", "Debian GNU/Linux", "12.15")

    def machine_id(self) -> str:
        return "0123456789abcdef0123456789abcdef"

    def inventory(self) -> Inventory:
        return Inventory(kernel="6.1.0-28-amd64")

    def missing_updates(self) -> list[Update]:
        return [Update(i, classification="security") for i in self.missing]

    def reboot_pending(self) -> bool:
        return self.rebooting

    def install(self, patch_ids: Any, *, timeout: float) -> Outcome:
        del timeout
        self.installs.append(list(patch_ids))
        results = []
        for patch_id in patch_ids:
            if patch_id in self.broken:
                results.append(PatchResult(patch_id, FAILED, "post-installation script returned 1"))
            else:
                self.missing.remove(patch_id)
                results.append(PatchResult(patch_id, INSTALLED))
        self.rebooting = self.reboot_after
        ok = all(r.result == INSTALLED for r in results)
        return Outcome(
            ok=ok, output="2 upgraded", results=tuple(results), reason=None if ok else "dpkg failed"
        )


def install_job(
    job_id: str = "job-1", *, reboot: str = "if-required", **payload: Any
) -> dict[str, Any]:
    return {
        "id": job_id,
        "kind": "install",
        "patches": ["openssl=3.0.15-1~deb12u1", "bash=5.2.15-2+b8"],
        "reboot": reboot,
        "scripts": {},
        "deadline": None,
        "revision": "main@sha1:abc",
        "payload": {"reboot": reboot, **payload},
    }


def make_agent(
    tmp_path: Path, os: MemoryOs, controller: FakeController, *, reboot_command: str = "true"
) -> agent.Agent:
    return agent.Agent(
        state=State(tmp_path / "state"),
        backend=os,
        controller=controller,  # type: ignore[arg-type]
        device_id="dev-1",
        hostname="web-01",
        settings=agent.Settings(reboot_command=reboot_command),
        rng=random.Random(7),  # noqa: S311 - jitter
        log=lambda _: None,
    )


def test_an_install_job_goes_acked_downloading_installing_succeeded(tmp_path: Path) -> None:
    """Install: acked → downloading → installing → succeeded with a result per patch, then a
    rescan is reported that no longer lists the installed patches."""
    os = MemoryOs(["openssl=3.0.15-1~deb12u1", "bash=5.2.15-2+b8"])
    controller = FakeController([install_job()])
    worker = make_agent(tmp_path, os, controller)
    assert 0 == worker.run(once=True)
    final = controller.events[-1][1]
    assert ["acked", "downloading", "installing", "succeeded"] == controller.states("job-1")
    assert [1, 2, 3, 4] == [body["seq"] for _, body in controller.events]
    assert [
        {"id": "openssl=3.0.15-1~deb12u1", "result": "installed"},
        {"id": "bash=5.2.15-2+b8", "result": "installed"},
    ] == final["patches"]
    assert [] == controller.reports[-1]["scan"]["missing"]


@pytest.mark.parametrize(
    ("option", "signal", "expected"),
    [
        pytest.param(
            "if-required",
            True,
            ["acked", "downloading", "installing", "rebooting", "succeeded"],
            id="if-required-and-signal",
        ),
        pytest.param(
            "if-required",
            False,
            ["acked", "downloading", "installing", "succeeded"],
            id="if-required-no-signal",
        ),
        pytest.param(
            "always",
            False,
            ["acked", "downloading", "installing", "rebooting", "succeeded"],
            id="always",
        ),
        pytest.param(
            "never", True, ["acked", "downloading", "installing", "succeeded"], id="never"
        ),
    ],
)
def test_reboots_follow_the_jobs_option_and_the_os_signal(
    tmp_path: Path, option: str, signal: bool, expected: list[str]
) -> None:
    """The agent reboots (through its command) when the job's option and the OS signal say so."""
    marker = tmp_path / "rebooted"
    controller = FakeController([install_job(reboot=option)])
    worker = make_agent(
        tmp_path,
        MemoryOs(install_job()["patches"], reboot_after=signal),
        controller,
        reboot_command=f"touch {marker}",
    )
    worker.run(once=True)
    assert expected == controller.states("job-1")
    assert ("rebooting" in expected) == marker.exists()
    assert signal == controller.events[-1][1]["rebootRequired"]


def test_a_failing_reboot_command_fails_the_job_with_its_reason(tmp_path: Path) -> None:
    """A reboot command that exits non-zero fails the job, saying so."""
    controller = FakeController([install_job(reboot="always")])
    worker = make_agent(
        tmp_path,
        MemoryOs(install_job()["patches"]),
        controller,
        reboot_command="echo no way; exit 3",
    )
    assert 1 == worker.run(once=True)
    final = controller.events[-1][1]
    assert ("failed", "reason: the reboot command failed (exit 3): no way") == (
        final["state"],
        final["output"].splitlines()[0],
    )


def test_a_failed_package_fails_the_job_with_per_patch_results(tmp_path: Path) -> None:
    """One broken package: the job fails, the other package is installed, the reason is kept."""
    controller = FakeController([install_job()])
    os = MemoryOs(install_job()["patches"], broken=("bash=5.2.15-2+b8",))
    assert 1 == make_agent(tmp_path, os, controller).run(once=True)
    final = controller.events[-1][1]
    assert "failed" == final["state"]
    assert ["installed", "failed"] == [p["result"] for p in final["patches"]]
    assert "post-installation script returned 1" == final["patches"][1]["reason"]


def test_a_failing_pre_script_stops_the_install(tmp_path: Path) -> None:
    """A pre-script that fails fails the job before anything is downloaded or installed."""
    pre = {
        "name": "drain",
        "shell": "sh",
        "content": "echo draining; exit 4",
        "timeoutSeconds": 30,
        "successCodes": [0],
    }
    controller = FakeController([install_job(preScript=pre)])
    os = MemoryOs(install_job()["patches"])
    make_agent(tmp_path, os, controller).run(once=True)
    final = controller.events[-1][1]
    assert ["acked", "failed"] == controller.states("job-1")
    assert [] == os.installs
    assert "reason: the pre-script failed\n--- drain (exit 4) ---\ndraining" == final["output"]


def test_post_script_runs_after_the_install_and_its_output_is_kept(tmp_path: Path) -> None:
    """A post-script with an accepted exit code runs after the install; its output is reported."""
    post = {
        "name": "health",
        "shell": "sh",
        "content": "echo healthy; exit 3",
        "timeoutSeconds": 30,
        "successCodes": [0, 3],
    }
    controller = FakeController([install_job(postScript=post)])
    make_agent(tmp_path, MemoryOs(install_job()["patches"]), controller).run(once=True)
    final = controller.events[-1][1]
    assert "succeeded" == final["state"]
    assert final["output"].endswith("--- health (exit 3) ---\nhealthy")


def test_a_script_job_that_overruns_its_timeout_fails(tmp_path: Path) -> None:
    """A script job is killed at its timeout and fails, saying so."""
    script = {
        "name": "slow",
        "shell": "sh",
        "content": "echo started; sleep 30",
        "timeoutSeconds": 1,
        "successCodes": [0],
    }
    job = {"id": "job-s", "kind": "script", "patches": [], "payload": {"script": script}}
    controller = FakeController([job])
    make_agent(tmp_path, MemoryOs([]), controller).run(once=True)
    final = controller.events[-1][1]
    assert ["acked", "installing", "failed"] == controller.states("job-s")
    assert final["output"].startswith("--- slow (timed out after 1 s) ---\nstarted")


def test_a_scan_job_reports_a_scan(tmp_path: Path) -> None:
    """A scan job reports a fresh scan, then succeeds."""
    controller = FakeController([{"id": "job-scan", "kind": "scan", "patches": []}])
    make_agent(tmp_path, MemoryOs(["openssl=3.0.15-1~deb12u1"]), controller).run(once=True)
    assert ["acked", "succeeded"] == controller.states("job-scan")
    assert 2 == len([r for r in controller.reports if "scan" in r])


def test_an_install_interrupted_by_a_restart_is_reported_failed(tmp_path: Path) -> None:
    """A job journalled as installing when the agent restarts is reported failed with why."""
    controller = FakeController()
    state = State(tmp_path / "state")
    state.ensure()
    state.save_journal({"job": install_job(), "seq": 3, "phase": "installing"})
    make_agent(tmp_path, MemoryOs([]), controller).run(once=True)
    job_id, final = controller.events[-1]
    reason = "interrupted: the agent stopped while the job was installing"
    assert ("job-1", "failed", 4) == (job_id, final["state"], final["seq"])
    assert [reason, reason] == [p["reason"] for p in final["patches"]]


def test_a_job_that_rebooted_the_machine_is_finished_after_the_restart(tmp_path: Path) -> None:
    """After its own reboot the agent sends the results it journalled before rebooting."""
    controller = FakeController()
    state = State(tmp_path / "state")
    state.ensure()
    final = {
        "state": "succeeded",
        "patches": [{"id": "bash=5.2.15-2+b8", "result": "installed"}],
        "rebootRequired": True,
        "output": "ok",
    }
    state.save_journal({"job": install_job(), "seq": 4, "phase": "rebooting", "final": final})
    make_agent(tmp_path, MemoryOs([]), controller).run(once=True)
    _, sent = controller.events[-1]
    assert ("succeeded", False, 5) == (sent["state"], sent["rebootRequired"], sent["seq"])


def test_events_wait_for_a_controller_that_is_down_and_arrive_in_order(tmp_path: Path) -> None:
    """With the controller down mid-job, the install still runs; its events are queued on disk
    and delivered later, in order, each once."""
    controller = FakeController()
    os = MemoryOs(install_job()["patches"])
    worker = make_agent(tmp_path, os, controller)
    controller.down = True
    worker.run_job(install_job())
    assert [] == controller.events
    assert 4 == worker.state.outbox_size()
    controller.down = False
    assert 0 == worker.run(once=True)
    assert ["acked", "downloading", "installing", "succeeded"] == controller.states("job-1")
    assert [1, 2, 3, 4] == [body["seq"] for _, body in controller.events]
    assert 0 == worker.state.outbox_size()


def test_an_unreachable_controller_is_exit_code_3(tmp_path: Path) -> None:
    """`run --once` against a controller that is down exits 3."""
    controller = FakeController()
    controller.down = True
    assert 3 == make_agent(tmp_path, MemoryOs([]), controller).run(once=True)


@pytest.mark.parametrize("status", [404, 409, 422])
def test_an_event_the_controller_refuses_is_dropped_not_retried(
    tmp_path: Path, status: int
) -> None:
    """An event refused for what it is (the job is finished or gone) leaves the queue."""
    controller = FakeController()
    controller.refuse = status
    worker = make_agent(tmp_path, MemoryOs([]), controller)
    worker.state.enqueue({"jobId": "job-1", "body": {"state": "acked", "seq": 1}})
    assert 1 == worker.flush()
    assert 0 == worker.state.outbox_size()


@pytest.mark.parametrize("status", [401, 403])
def test_an_event_refused_for_the_token_stays_queued(tmp_path: Path, status: int) -> None:
    """A refused device token is not the event's fault: it stays queued and the error rises."""
    controller = FakeController()
    controller.refuse = status
    worker = make_agent(tmp_path, MemoryOs([]), controller)
    worker.state.enqueue({"jobId": "job-1", "body": {"state": "acked", "seq": 1}})
    with pytest.raises(RefusedError):
        worker.flush()
    assert 1 == worker.state.outbox_size()


def test_a_redelivered_job_is_not_run_twice(tmp_path: Path) -> None:
    """At-least-once delivery: a job already journalled is not run again."""
    controller = FakeController([install_job()])
    os = MemoryOs(install_job()["patches"])
    worker = make_agent(tmp_path, os, controller)
    worker.run(once=True)
    controller.pending_jobs = [install_job()]
    worker.run(once=True)
    assert 1 == len(os.installs)


def test_state_files_are_private(tmp_path: Path) -> None:
    """The token, journals and queued events are written with mode 0600 in a 0700 folder."""
    state = State(tmp_path / "state")
    state.save_enrolment({"deviceId": "dev-1"}, "secret-token")
    state.enqueue({"jobId": "j", "body": {}})
    state.save_journal({"job": {"id": "j"}})
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "state").rglob("*")}
    assert {0o600} == {m for name, m in modes.items() if name.endswith((".json", "token"))}
    assert {0o700} == {m for name, m in modes.items() if name in ("jobs", "outbox")}
    assert 0o700 == stat.S_IMODE((tmp_path / "state").stat().st_mode)


@pytest.mark.parametrize("failures", [1, 2, 5, 30])
def test_backoff_grows_is_capped_and_jittered(failures: int) -> None:
    """Waits grow exponentially from 5 s, never pass the cap, and vary between agents."""
    ceiling = min(600.0, 5.0 * 2 ** (failures - 1))
    rngs = [random.Random(seed) for seed in range(20)]  # noqa: S311 - jitter, not secrets
    waits = {round(agent.backoff(failures, cap=600.0, rng=rng), 3) for rng in rngs}
    assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert len(waits) > 1


class _Polling(FakeController):
    """A controller whose every answer carries `poll_interval` (whatever it is)."""

    def __init__(self, poll_interval: object) -> None:
        super().__init__()
        self.poll_interval = poll_interval

    def report(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {**super().report(device_id, body), "pollInterval": self.poll_interval}

    def jobs(self, device_id: str) -> dict[str, Any]:
        return {**super().jobs(device_id), "pollInterval": self.poll_interval}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(30, 30.0, id="seconds"),
        pytest.param(0.5, 0.5, id="a-fraction"),
        pytest.param(agent.MAX_SECONDS, float(agent.MAX_SECONDS), id="a-week"),
        pytest.param(float("inf"), 60.0, id="infinity"),
        pytest.param(1e10, 60.0, id="beyond-a-week"),
        pytest.param(-5, 60.0, id="negative"),
        pytest.param(0, 60.0, id="zero"),
        pytest.param(True, 60.0, id="a-boolean"),
        pytest.param("30", 60.0, id="a-string"),
    ],
)
def test_the_agent_waits_a_poll_interval_it_can_wait(
    tmp_path: Path, given: object, expected: float
) -> None:
    """The controller's poll interval is taken when it is more than 0 s and at most a week;
    otherwise the agent keeps the one it had (time.sleep() refuses infinity: a traceback)."""
    waits: list[float] = []
    worker = agent.Agent(
        state=State(tmp_path / "state"),
        backend=MemoryOs([]),
        controller=_Polling(given),  # type: ignore[arg-type]
        device_id="dev-1",
        hostname="web-01",
        settings=agent.Settings(),
        sleep=waits.append,
        rng=random.Random(7),  # noqa: S311 - jitter
        log=lambda _: None,
    )
    assert 0 == worker.run(once=False, should_stop=lambda: bool(waits))
    assert expected * 0.9 <= waits[0] <= expected * 1.1


@pytest.mark.parametrize(
    ("size", "expected_length"),
    [
        pytest.param(100, 100, id="short-kept"),
        pytest.param(200_000, procs.MAX_OUTPUT_CHARS, id="long-cut"),
    ],
)
def test_output_is_truncated_in_the_middle(size: int, expected_length: int) -> None:
    """Long output keeps its head and tail and says how much was cut."""
    text = "h" + "x" * (size - 2) + "t"
    cut = procs.truncate(text)
    assert (text[0], text[-1]) == (cut[0], cut[-1])
    assert expected_length >= len(cut) > expected_length - 100


class BrokenOs(MemoryOs):
    """An OS whose package manager stops answering during the install."""

    def install(self, patch_ids: Any, *, timeout: float) -> Outcome:
        del patch_ids, timeout
        message = "dpkg-query failed (exit 2): dpkg: error: parsing file '/var/lib/dpkg/status'"
        raise BackendError(message)


def test_a_package_manager_that_breaks_mid_job_fails_the_job_with_why(tmp_path: Path) -> None:
    """A backend error during an install finishes the job failed with the error, per patch."""
    controller = FakeController([install_job()])
    make_agent(tmp_path, BrokenOs(install_job()["patches"]), controller).run(once=True)
    final = controller.events[-1][1]
    reason = "the agent could not run the job: dpkg-query failed (exit 2): dpkg: error: parsing file '/var/lib/dpkg/status'"
    assert ["acked", "downloading", "installing", "failed"] == controller.states("job-1")
    assert [reason, reason] == [p["reason"] for p in final["patches"]]


def test_a_scan_job_with_the_controller_gone_is_finished_and_queued(tmp_path: Path) -> None:
    """A scan job whose report cannot be sent fails, and its events wait in the outbox."""
    controller = FakeController()
    worker = make_agent(tmp_path, MemoryOs([]), controller)
    controller.down = True
    worker.run_job({"id": "job-scan", "kind": "scan", "patches": []})
    controller.down = False
    worker.flush()
    assert ["acked", "failed"] == controller.states("job-scan")
    assert controller.events[-1][1]["output"].startswith(
        "reason: the agent could not run the job: cannot reach"
    )


class AnonymousOs(MemoryOs):
    """An OS without a machine id of its own."""

    def machine_id(self) -> None:  # type: ignore[override]
        return None


def test_a_scan_writes_nothing_but_a_report_makes_an_identity(tmp_path: Path) -> None:
    """Without an OS machine id, `scan` (read-only) reports none and writes nothing; a real
    report makes one in the state dir and keeps it."""
    state = State(tmp_path / "state")
    scanning = agent.Agent(
        state=state,
        backend=AnonymousOs([]),
        controller=FakeController(),  # type: ignore[arg-type]
        device_id="",
        hostname="web-01",
        settings=agent.Settings(),
        read_only=True,
    )
    assert "machineId" not in scanning.facts()
    assert not (tmp_path / "state").exists()
    reporting = make_agent(tmp_path, AnonymousOs([]), FakeController())
    made = reporting.facts()["machineId"]
    assert (32, made) == (len(made), reporting.facts()["machineId"])
    assert made == (tmp_path / "state" / "machine-id").read_text().strip()
