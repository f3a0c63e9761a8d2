"""The controller's status vocabulary: reconcile results, condition types, statuses and reasons.

Modelled on Flux's `api/v1/condition_types.go`: every condition type and reason is a documented
constant here, and the status writer (`controller.runtime.reconcile.conditions`), the status
readers (`controller.runtime.status`, the dashboard) and the forge publisher never spell one as a
fresh string. The values are stored (the `conditions` status key, `reconcile_runs.result`) and
shown by the API and `patchctl reconcile --json`: they never change.

Purely computational, no side effects.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConditionStatus", "ConditionType", "Reason", "ReconcileResult", "reason_for"]


class ReconcileResult(StrEnum):
    """How one reconcile pass ended (`Outcome.result`, `reconcile_runs.result`)."""

    APPLIED = "applied"  # a valid revision was planned and applied
    POLICY_INVALID = "policy-invalid"  # the tip does not validate; the last valid one is kept
    SOURCE_ERROR = "source-error"  # the repository could not be read (transient)
    NO_VALID_REVISION = "no-valid-revision"  # no revision has validated yet: nothing to enforce


class ConditionType(StrEnum):
    """The conditions the controller reports, Flux's `Ready`/`Reconciling`/`Stalled` and one
    of its own."""

    READY = "Ready"  # True: the last pass applied the branch tip
    RECONCILING = "Reconciling"  # True only while a pass runs (the stored value is after one)
    STALLED = "Stalled"  # True: the tip does not validate; a new commit is needed (a human)
    SOURCE_VERIFIED = "SourceVerified"  # every approving change passed the access policy


class ConditionStatus(StrEnum):
    """A condition's status, as Kubernetes spells it."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"

    @classmethod
    def of(cls, holds: bool) -> ConditionStatus:
        """`True` or `False` for a condition that holds or not."""
        return cls.TRUE if holds else cls.FALSE


class Reason(StrEnum):
    """Why a condition has its status: a CamelCase word a person or a tool can match on."""

    # Ready, Reconciling and Stalled: one per ReconcileResult (`reason_for`)
    RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
    POLICY_INVALID = "PolicyInvalid"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    NO_VALID_REVISION = "NoValidRevision"
    # SourceVerified
    APPROVALS_VERIFIED = "ApprovalsVerified"  # True: every approving change passed
    APPROVAL_REJECTED = "ApprovalRejected"  # False: approving objects were left out
    AUDIT_UNAVAILABLE = "AuditUnavailable"  # Unknown: the audit trail could not be read
    NOT_CONFIGURED = "NotConfigured"  # Unknown: no access policy is configured


_REASONS = {
    ReconcileResult.APPLIED: Reason.RECONCILIATION_SUCCEEDED,
    ReconcileResult.POLICY_INVALID: Reason.POLICY_INVALID,
    ReconcileResult.SOURCE_ERROR: Reason.SOURCE_UNAVAILABLE,
    ReconcileResult.NO_VALID_REVISION: Reason.NO_VALID_REVISION,
}


def reason_for(result: ReconcileResult) -> Reason:
    """The reason the `Ready`, `Reconciling` and `Stalled` conditions give for `result`."""
    return _REASONS[result]
