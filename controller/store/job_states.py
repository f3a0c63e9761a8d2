"""Moved: the job state machine is `controller.core.jobs` (tables `AGENT_MOVES` and `ENDINGS`).

Kept as a re-export until its last importers (`runtime/apply.py` and tests) import
`controller.core.jobs`; nothing is defined here.
"""

from __future__ import annotations

from controller.core.jobs import (
    AGENT_STATES,
    DELIVERABLE_STATES,
    STARTED_STATES,
    TERMINAL_STATES,
    EventVerdict,
    dedupe_key,
    evaluate_event,
)
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
