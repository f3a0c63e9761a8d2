"""Test doubles for the agent's far sides: recorded package-manager output and a controller.

`Replay` answers commands from a recording made on a real system (`fixtures/apt/record.py`);
`FakeController` stands in for the controller's HTTP API and can be taken down and brought back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from patchctl_agent import procs, wire

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Replay:
    """A `procs.Runner` that answers each command from a recording, in order; an unrecorded
    command fails the test (the backend ran something the real system was never asked)."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = list(calls)
        self.ran: list[list[str]] = []

    @classmethod
    def of(cls, name: str) -> Replay:
        return cls(json.loads((FIXTURES / name).read_text(encoding="utf-8")))

    def __call__(self, args: list[str], **_: Any) -> procs.Completed:
        self.ran.append(list(args))
        for index, call in enumerate(self.calls):
            if call["args"] == list(args):
                del self.calls[index]
                return procs.Completed(tuple(args), call["code"], call["output"])
        message = f"command not in the recording: {args}"
        raise AssertionError(message)


class FakeController:
    """The controller's agent API in memory: records every call; `down` makes calls fail as an
    unreachable server does, `refuse` answers job events with that HTTP status."""

    def __init__(self, jobs: list[dict[str, Any]] | None = None) -> None:
        self.pending_jobs = list(jobs or [])
        self.reports: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.refuse = 0  # the HTTP status job events are refused with (0: accepted)

    def _reachable(self) -> None:
        if self.down:
            raise wire.WireError("cannot reach 127.0.0.1:9: connection refused")

    def report(self, _device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._reachable()
        self.reports.append(body)
        return {"accepted": True, "pollInterval": 30}

    def jobs(self, _device_id: str) -> dict[str, Any]:
        self._reachable()
        jobs, self.pending_jobs = self.pending_jobs, []
        return {"jobs": jobs, "pollInterval": 30}

    def event(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._reachable()
        if self.refuse:
            from patchctl_agent.protocol import RefusedError  # noqa: PLC0415

            raise RefusedError(self.refuse, "refused")
        self.events.append((job_id, body))
        return {"jobId": job_id, "state": body["state"], "status": "applied"}

    def states(self, job_id: str) -> list[str]:
        return [body["state"] for jid, body in self.events if jid == job_id]
