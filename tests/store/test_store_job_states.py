"""The job state machine the store applies to agents' events: forwards only, terminal states
final, repeats as progress; replays known by their dedupe key."""

from __future__ import annotations

import pytest

from controller.store.job_states import (
    AGENT_STATES,
    TERMINAL_STATES,
    EventVerdict,
    JobState,
    dedupe_key,
    evaluate_event,
)

P, D, A = JobState.PENDING, JobState.DELIVERED, JobState.ACKED
DL, IN, RB = JobState.DOWNLOADING, JobState.INSTALLING, JobState.REBOOTING
OK, KO, EX, CA = JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED


@pytest.mark.parametrize(
    ("current", "reported", "verdict", "reason"),
    [
        (D, A, EventVerdict.ADVANCE, ""),
        (P, IN, EventVerdict.ADVANCE, ""),
        (A, OK, EventVerdict.ADVANCE, ""),
        (RB, KO, EventVerdict.ADVANCE, ""),
        (IN, IN, EventVerdict.PROGRESS, ""),
        (IN, DL, EventVerdict.ILLEGAL, "the job is installing; it cannot go back to downloading"),
        (OK, KO, EventVerdict.ILLEGAL, "the job is already succeeded"),
        (CA, A, EventVerdict.ILLEGAL, "the job is already cancelled"),
        (OK, OK, EventVerdict.ILLEGAL, "the job is already succeeded"),
        (A, D, EventVerdict.ILLEGAL, "agents cannot set a job to 'delivered'"),
        (A, EX, EventVerdict.ILLEGAL, "agents cannot set a job to 'expired'"),
    ],
    ids=lambda value: str(value) if isinstance(value, JobState) else None,
)
def test_an_event_advances_repeats_or_is_refused(
    current: JobState, reported: JobState, verdict: EventVerdict, reason: str
) -> None:
    """Agents move jobs forwards (skipping is fine) and never out of a terminal state."""
    assert (verdict, reason) == evaluate_event(current, reported)


def test_agents_set_only_their_own_states_and_terminal_states_are_final() -> None:
    """Pending, delivered, expired and cancelled are the controller's to set."""
    assert (frozenset({P, D, EX, CA}), frozenset({OK, KO, EX, CA})) == (
        frozenset(JobState) - AGENT_STATES,
        TERMINAL_STATES,
    )


@pytest.mark.parametrize(
    ("seq", "content", "same_as"),
    [
        pytest.param(7, {"state": "acked"}, (7, {"state": "installing"}), id="seq-decides"),
        pytest.param(
            None,
            {"state": "acked", "at": "09:00"},
            (None, {"at": "09:00", "state": "acked"}),
            id="content-in-any-key-order",
        ),
    ],
)
def test_a_replayed_event_has_the_same_dedupe_key(
    seq: int | None, content: dict[str, str], same_as: tuple[int | None, dict[str, str]]
) -> None:
    """The agent's `seq` when it numbers events, else the canonical content's hash."""
    assert dedupe_key(seq, content) == dedupe_key(*same_as)


def test_different_content_without_seq_has_another_key() -> None:
    """Two different events are never taken for a replay of each other."""
    assert dedupe_key(None, {"state": "acked"}) != dedupe_key(None, {"state": "failed"})
    assert "seq:7" == dedupe_key(7, {})
