"""Jobs the planner issues: deterministic ids, the payload an agent receives, and deadlines.

Purely computational. The id is a hash of what makes a job unique (device, kind, patch set and the
window occurrence or trigger), so planning twice on the same input issues nothing new.

Every job has two deadlines (docs/jobs.md):
- the **pickup deadline** (`JobSpec.deadline`): a job the agent has not acknowledged by then
  expires (`no-agent`);
- the **run deadline** (`run_deadline`): a job the agent started (acked, downloading, installing,
  rebooting) must reach a final state within its **run timeout** of being started, else the
  controller fails it (`timed-out`) and plans the device again. The run timeout is
  `run_timeout(...)`: a scan 2 h; a script its Script's timeout + 30 min; an install the window's
  duration + the pre- and post-script timeouts + 30 min for a reboot (unless `reboot: never`)
  + 30 min.

The job state machine (docs/jobs.md) is the two tables below, asked before anything is written
by the store (`store.jobs.record_event`, `store.jobs.end_jobs`, `store.operations`) and the agent
API:

    pending -> delivered -> acked -> downloading -> installing -> rebooting -> succeeded | failed
                                                                  (controller) expired | cancelled

- `AGENT_MOVES`: an agent moves a job forwards only and may skip states (a scan job goes
  acked -> succeeded). Repeating the current state is progress (a new `seq`), not a transition.
  Terminal states never change. A replayed event (same job, state and `seq`, or the same content
  when there is no `seq`) is recognised by its dedupe key before these rules are asked.
- `ENDINGS`: the controller ends a job for a reason (`EndReason`), from the states that reason
  allows, in one final state; delivery moves a job not taken to `delivered`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from controller.core.ids import JobId
from controller.core.observed import JobKind, JobState, JobView
from controller.core.records import quick_init
from controller.kinds import Script
from controller.kinds.windows import RebootOption

SCAN_RUN_TIMEOUT = timedelta(hours=2)
RUN_GRACE = timedelta(minutes=30)  # the agent's last report may lag behind its work
REBOOT_ALLOWANCE = timedelta(minutes=30)  # a reboot and the agent's restart after it
# For jobs stored without a run timeout (issued before the rule existed): by kind.
DEFAULT_RUN_TIMEOUTS = {
    JobKind.SCAN: SCAN_RUN_TIMEOUT,
    JobKind.INSTALL: timedelta(hours=6),
    JobKind.SCRIPT: timedelta(hours=2),
}


class EndReason(StrEnum):
    """Why the controller, not the agent, ended a job (stored with the state it was in)."""

    TIMED_OUT = "timed-out"  # started, no final state before its run deadline
    NO_AGENT = "no-agent"  # not picked up before its pickup deadline
    NOT_INSTALLABLE = "not-installable"  # cancelled: its patches are no longer installable
    RE_ENROLLED = "re-enrolled"  # the machine enrolled again; its old jobs will never report
    SUPERSEDED = "superseded"  # a scan job not taken: the agent reported a fresh scan meanwhile
    OPERATOR = "cancelled-by-operator"  # an operator cancelled it (docs/operations.md)
    DEVICE_RETIRED = "device-retired"  # an operator retired its device


# --- the state machine -------------------------------------------------------------------------

TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED}
)
UNFINISHED_STATES = frozenset(JobState) - TERMINAL_STATES
# Issued, not taken by the agent: delivered (again) until acknowledged or past the pickup deadline.
DELIVERABLE_STATES = frozenset({JobState.PENDING, JobState.DELIVERED})
# Taken by the agent, not finished: these run against a run deadline (`run_deadline`).
STARTED_STATES = frozenset(
    {JobState.ACKED, JobState.DOWNLOADING, JobState.INSTALLING, JobState.REBOOTING}
)
# What an agent may report: the states it moves a job to.
AGENT_STATES = STARTED_STATES | {JobState.SUCCEEDED, JobState.FAILED}
_AFTER_REBOOT = frozenset({JobState.SUCCEEDED, JobState.FAILED})
_AFTER_INSTALL = _AFTER_REBOOT | {JobState.REBOOTING}
_AFTER_DOWNLOAD = _AFTER_INSTALL | {JobState.INSTALLING}
_AFTER_ACK = _AFTER_DOWNLOAD | {JobState.DOWNLOADING}

# From each state, the states an agent's event may move a job to (forwards, skipping allowed).
AGENT_MOVES: Mapping[JobState, frozenset[JobState]] = {
    JobState.PENDING: AGENT_STATES,
    JobState.DELIVERED: AGENT_STATES,
    JobState.ACKED: _AFTER_ACK,
    JobState.DOWNLOADING: _AFTER_DOWNLOAD,
    JobState.INSTALLING: _AFTER_INSTALL,
    JobState.REBOOTING: _AFTER_REBOOT,
    **dict.fromkeys(TERMINAL_STATES, frozenset[JobState]()),
}


class EventVerdict(StrEnum):
    """What an agent's event does to its job (`evaluate_event`)."""

    ADVANCE = "advance"  # the job moves to the reported state
    PROGRESS = "progress"  # same state again: recorded, the state stays
    ILLEGAL = "illegal"


def evaluate_event(current: JobState, reported: JobState) -> tuple[EventVerdict, str]:
    """What an agent's event reporting `reported` does to a job in `current` state, with the
    reason a person reads when it is illegal (else ""). The rule is `AGENT_MOVES`."""
    if reported not in AGENT_STATES:
        return EventVerdict.ILLEGAL, f"agents cannot set a job to {reported.value!r}"
    if current in TERMINAL_STATES:
        return EventVerdict.ILLEGAL, f"the job is already {current.value}"
    if reported == current:
        return EventVerdict.PROGRESS, ""
    if reported in AGENT_MOVES[current]:
        return EventVerdict.ADVANCE, ""
    return (
        EventVerdict.ILLEGAL,
        f"the job is {current.value}; it cannot go back to {reported.value}",
    )


def dedupe_key(seq: int | None, content: Mapping[str, object]) -> str:
    """The key that makes an event idempotent: its `seq` when the agent numbers events, else a
    hash of its canonical content."""
    if seq is not None:
        return f"seq:{seq}"
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Ending:
    """How the controller ends a job for one reason: from which states, into which state."""

    from_states: frozenset[JobState]
    to_state: JobState


# Every way the controller ends a job; a job in another state is left alone (an agent may have
# moved it meanwhile). Cancelling or retiring never touches a finished job.
ENDINGS: Mapping[EndReason, Ending] = {
    EndReason.NO_AGENT: Ending(DELIVERABLE_STATES, JobState.EXPIRED),
    EndReason.NOT_INSTALLABLE: Ending(DELIVERABLE_STATES, JobState.CANCELLED),
    EndReason.SUPERSEDED: Ending(DELIVERABLE_STATES, JobState.CANCELLED),
    EndReason.TIMED_OUT: Ending(STARTED_STATES, JobState.FAILED),
    EndReason.RE_ENROLLED: Ending(STARTED_STATES, JobState.FAILED),
    EndReason.OPERATOR: Ending(UNFINISHED_STATES, JobState.CANCELLED),
    EndReason.DEVICE_RETIRED: Ending(UNFINISHED_STATES, JobState.CANCELLED),
}


def evaluate_ending(current: JobState, reason: EndReason) -> JobState | None:
    """The state a job in `current` state ends in when the controller ends it for `reason`;
    None when `reason` does not end a job in that state (`ENDINGS`)."""
    ending = ENDINGS[reason]
    return ending.to_state if current in ending.from_states else None


def job_id(device_id: str, kind: JobKind, patch_ids: Iterable[str], occasion: str) -> JobId:
    """`<kind>-<24 hex>`: stable for the same device, kind, patch set and occasion."""
    material = "\x1f".join((device_id, kind.value, ",".join(sorted(patch_ids)), occasion))
    return JobId(f"{kind.value}-{hashlib.sha256(material.encode()).hexdigest()[:24]}")


@dataclass(frozen=True, slots=True)
class ScriptPayload:
    """A script as delivered: content pinned to the revision the job was planned from."""

    name: str
    shell: str
    content: str
    timeout_seconds: int
    success_codes: tuple[int, ...]

    @classmethod
    def of(cls, script: Script) -> ScriptPayload:
        return cls(
            name=script.name,
            shell=script.spec.shell.value,
            content=script.spec.content,
            timeout_seconds=int(script.spec.timeout.total_seconds()),
            success_codes=script.spec.success_codes,
        )


@quick_init
@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to issue."""

    id: JobId
    device_id: str
    kind: JobKind
    reason: (
        str  # why: "initial scan", "scan due (last 2026-11-20T02:00Z)", "window ... occurrence ..."
    )
    patch_ids: tuple[str, ...] = ()
    window: str | None = None  # "tenant/name" of the PatchWindow (installs)
    occurrence: str | None = None  # occurrence or trigger key
    reboot: RebootOption | None = None
    pre_script: ScriptPayload | None = None
    post_script: ScriptPayload | None = None
    script: ScriptPayload | None = None  # ScriptJob
    deadline: datetime | None = None  # pickup deadline
    revision: str | None = None
    run_timeout: timedelta | None = None  # from the agent's start to a final state


def run_timeout(
    kind: JobKind,
    *,
    window_duration: timedelta | None = None,
    reboot: RebootOption | None = None,
    scripts: Iterable[ScriptPayload | None] = (),
) -> timedelta:
    """How long a job may run once the agent started it (the module docstring gives the rule).

    `window_duration` is the PatchWindow's `duration` (installs); `scripts` are the job's pre-,
    post- or ScriptJob scripts (None entries are skipped).
    """
    script_time = sum(
        (timedelta(seconds=s.timeout_seconds) for s in scripts if s is not None), timedelta()
    )
    if kind is JobKind.SCAN:
        return SCAN_RUN_TIMEOUT
    if kind is JobKind.SCRIPT:
        return script_time + RUN_GRACE
    reboot_time = timedelta() if reboot is RebootOption.NEVER else REBOOT_ALLOWANCE
    return (window_duration or timedelta()) + script_time + reboot_time + RUN_GRACE


def run_deadline(job: JobView) -> datetime | None:
    """When a started job must have finished: its start + its run timeout (the kind's default
    when it has none). None for a job not started or already finished. A job without a start
    instant (stored before starts were recorded) counts from its last update."""
    if not (job.state.started and job.state.in_flight):
        return None
    started = job.started_at or job.updated_at or job.created_at
    if started is None:
        return None
    return started + (job.run_timeout or DEFAULT_RUN_TIMEOUTS[job.kind])


def has_timed_out(job: JobView, *, now: datetime) -> bool:
    """A started job past its run deadline at `now`."""
    deadline = run_deadline(job)
    return deadline is not None and deadline <= now


def has_expired(job: JobView, *, now: datetime) -> bool:
    """A job the agent never took, past its pickup deadline at `now`."""
    return job.state in DELIVERABLE_STATES and job.deadline is not None and job.deadline <= now


def ended_at(job: JobView, *, now: datetime) -> tuple[JobState, EndReason] | None:
    """What the controller does to `job` at `now`: (the state it ends in, the reason), or None
    when the job is finished or within its deadlines."""
    if has_expired(job, now=now):
        return ENDINGS[EndReason.NO_AGENT].to_state, EndReason.NO_AGENT
    if has_timed_out(job, now=now):
        return ENDINGS[EndReason.TIMED_OUT].to_state, EndReason.TIMED_OUT
    return None


def settle(job: JobView, *, now: datetime) -> JobView:
    """`job` as it stands once the controller ended it at `now` if it is overdue (expired or
    timed out, stamped `now` with the reason); else `job` itself."""
    ending = ended_at(job, now=now)
    if ending is None:
        return job
    state, reason = ending
    return replace(job, state=state, updated_at=now, end_reason=reason)
