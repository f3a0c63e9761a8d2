"""Approval: a reviewed decision that listed patches may be installed on listed targets."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import Document, Model, PatchId, Targets


class ApprovalSpec(Model):
    patches: tuple[PatchId, ...] = Field(min_length=1, description="Explicit patch ids only.")
    targets: Targets = Field(description="Devices the patches are approved for.")
    reason: str = Field(min_length=1, description="Why: shown in the audit trail. Required.")
    expires: date | None = Field(
        default=None,
        description="Last day the approval holds (UTC); an expired approval approves nothing.",
    )
    ticket: str | None = Field(default=None, description="Change ticket, e.g. `CHG-4711`.")


class Approval(Document):
    """Listed patches may be installed on the targeted devices."""

    KIND: ClassVar[str] = "Approval"
    kind: Literal["Approval"] = Field(description="Always `Approval`.")
    spec: ApprovalSpec = Field(description="Patches, targets, reason and expiry.")

    def is_expired(self, *, today: date) -> bool:
        return self.spec.expires is not None and today > self.spec.expires
