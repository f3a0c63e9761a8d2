"""The job state machine, as pure functions over values.

Purely computational, no side effects: the store and the HTTP layer ask these functions what an
event does before they write anything.

    pending -> delivered -> acked -> downloading -> installing -> rebooting -> succeeded | failed
                                                                  (controller) expired | cancelled

An agent moves a job forwards only, and may skip states (a scan job goes acked -> succeeded).
Repeating the current state is progress (a new `seq`), not a transition. Terminal states never
change. A replayed event (same job, state and `seq`, or the same content when there is no
`seq`) is recognised by its dedupe key before these rules are asked.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

# One vocabulary for the planner and the store: the states and kinds are the core's.
from controller.core.observed import JobKind, JobState

__all__ = [
    "AGENT_STATES",
    "DELIVERABLE_STATES",
    "STARTED_STATES",
    "TERMINAL_STATES",
    "EventVerdict",
    "JobKind",
    "JobState",
    "dedupe_key",
    "evaluate_event",
]


class EventVerdict(StrEnum):
    ADVANCE = "advance"  # the job moves to the reported state
    PROGRESS = "progress"  # same state again: recorded, the state stays
    ILLEGAL = "illegal"


AGENT_STATES = frozenset(
    {
        JobState.ACKED,
        JobState.DOWNLOADING,
        JobState.INSTALLING,
        JobState.REBOOTING,
        JobState.SUCCEEDED,
        JobState.FAILED,
    }
)
TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED}
)
DELIVERABLE_STATES = frozenset({JobState.PENDING, JobState.DELIVERED})
# Taken by the agent, not finished: these run against a run deadline (core.jobs.run_deadline).
STARTED_STATES = frozenset(
    {JobState.ACKED, JobState.DOWNLOADING, JobState.INSTALLING, JobState.REBOOTING}
)
_RANK = {
    JobState.PENDING: 0,
    JobState.DELIVERED: 0,
    JobState.ACKED: 1,
    JobState.DOWNLOADING: 2,
    JobState.INSTALLING: 3,
    JobState.REBOOTING: 4,
    JobState.SUCCEEDED: 5,
    JobState.FAILED: 5,
}


def evaluate_event(current: JobState, reported: JobState) -> tuple[EventVerdict, str]:
    """What an agent's event does to a job in `current` state, with the reason when illegal."""
    if reported not in AGENT_STATES:
        return EventVerdict.ILLEGAL, f"agents cannot set a job to {reported.value!r}"
    if current in TERMINAL_STATES:
        return EventVerdict.ILLEGAL, f"the job is already {current.value}"
    if reported == current:
        return EventVerdict.PROGRESS, ""
    if _RANK[reported] > _RANK[current]:
        return EventVerdict.ADVANCE, ""
    return (
        EventVerdict.ILLEGAL,
        f"the job is {current.value}; it cannot go back to {reported.value}",
    )


def dedupe_key(seq: int | None, content: dict[str, Any]) -> str:
    """The key that makes an event idempotent: its `seq` when the agent numbers events, else a
    hash of its canonical content."""
    if seq is not None:
        return f"seq:{seq}"
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
