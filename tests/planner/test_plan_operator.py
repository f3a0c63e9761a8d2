"""What the planner does after an operator's cancellation (issue 16 item 4): a cancelled install
is not issued again in its window occurrence, a cancelled scan waits before its retry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.core.jobs import EndReason
from controller.core.observed import JobKind, JobState
from controller.core.plan import SCAN_RETRY_AFTER, plan
from controller.testing.fleets import SUNDAY_OPEN, desired, device, job, observed, scan


def test_a_cancelled_install_is_not_issued_again_in_its_occurrence() -> None:
    """The operator's cancellation counts as the occurrence's attempt; next week installs."""
    dev = device("w1")
    cancelled = job(
        "install-1",
        dev,
        state=JobState.CANCELLED,
        patches=("KB-SEC",),
        end_reason=EndReason.OPERATOR,
    )
    now_result = plan(
        desired(), observed((dev, scan("KB-SEC", age=timedelta(minutes=1))), jobs=(cancelled,)),
        now=SUNDAY_OPEN,
    )  # fmt: skip
    next_week = SUNDAY_OPEN + timedelta(days=7)
    later = plan(
        desired(),
        observed((device("w1", now=next_week), scan("KB-SEC", now=next_week)), jobs=(cancelled,)),
        now=next_week,
    )
    assert [] == [j.patch_ids for j in now_result.issue if j.kind is JobKind.INSTALL]
    assert [("KB-SEC",)] == [j.patch_ids for j in later.issue if j.kind is JobKind.INSTALL]


@pytest.mark.parametrize(
    ("end_reason", "after", "issued"),
    [
        (EndReason.OPERATOR, timedelta(minutes=5), False),
        (EndReason.OPERATOR, SCAN_RETRY_AFTER, True),
        (EndReason.NO_AGENT, timedelta(minutes=5), True),
    ],
    ids=["operator-waits", "operator-after-an-hour", "expired-at-once"],
)
def test_a_cancelled_scan_waits_before_its_retry(
    end_reason: EndReason, after: timedelta, issued: bool
) -> None:
    """An operator-cancelled due scan is retried an hour later; an expired one at once."""
    now = SUNDAY_OPEN - timedelta(days=3)  # outside the window: only scans
    dev = device("w1", now=now)
    stale = scan(age=timedelta(hours=25), now=now)
    (due,) = plan(desired(), observed((dev, stale)), now=now).issue
    ended = job(
        due.id,
        dev,
        kind=JobKind.SCAN,
        state=JobState.CANCELLED if end_reason is EndReason.OPERATOR else JobState.EXPIRED,
        window=None,
        occurrence=due.occurrence,
        created=now - after,
        end_reason=end_reason,
    )
    result = plan(desired(), observed((dev, stale), jobs=(ended,)), now=now)
    scans = [j.occurrence for j in result.issue if j.kind is JobKind.SCAN]
    assert ([f"retry:{due.id}"] if issued else []) == scans
