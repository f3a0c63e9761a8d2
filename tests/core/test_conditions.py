"""`controller.core.conditions`: every reconcile result has its reason; statuses read as Kubernetes'."""

from __future__ import annotations

import pytest

from controller.core.conditions import ConditionStatus, Reason, ReconcileResult, reason_for


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ReconcileResult.APPLIED, Reason.RECONCILIATION_SUCCEEDED),
        (ReconcileResult.POLICY_INVALID, Reason.POLICY_INVALID),
        (ReconcileResult.SOURCE_ERROR, Reason.SOURCE_UNAVAILABLE),
        (ReconcileResult.NO_VALID_REVISION, Reason.NO_VALID_REVISION),
    ],
    ids=str,
)
def test_every_result_has_a_reason(result: ReconcileResult, reason: Reason) -> None:
    """Ready, Reconciling and Stalled give one reason per reconcile result."""
    assert reason == reason_for(result)


@pytest.mark.parametrize(
    ("holds", "expected"), [(True, "True"), (False, "False")], ids=["holds", "does-not"]
)
def test_status_of_a_truth_value(holds: bool, expected: str) -> None:
    """A condition that holds is `True`, else `False` (stored as those words)."""
    assert expected == ConditionStatus.of(holds)
