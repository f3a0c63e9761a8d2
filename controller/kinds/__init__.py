"""The policy kinds: pydantic models, frozen, unknown fields rejected, every field described."""

from __future__ import annotations

from controller.kinds.approvals import Approval
from controller.kinds.baselines import Baseline
from controller.kinds.common import API_VERSION, Document, ObjectKey
from controller.kinds.devices import Device
from controller.kinds.feeds import PatchFeed
from controller.kinds.groups import DeviceGroup
from controller.kinds.notifications import Notification
from controller.kinds.proposals import ApprovalProposal
from controller.kinds.reports import ReportSchedule
from controller.kinds.scans import ScanSchedule
from controller.kinds.scripts import Script, ScriptJob
from controller.kinds.tenants import Tenant
from controller.kinds.whitelists import Whitelist
from controller.kinds.windows import PatchWindow

KINDS: dict[str, type[Document]] = {
    model.KIND: model
    for model in (
        Baseline,
        Whitelist,
        Approval,
        ApprovalProposal,
        PatchWindow,
        ScanSchedule,
        Script,
        ScriptJob,
        Notification,
        ReportSchedule,
        PatchFeed,
        Tenant,
        DeviceGroup,
        Device,
    )
}

__all__ = [
    "API_VERSION",
    "KINDS",
    "Approval",
    "ApprovalProposal",
    "Baseline",
    "Device",
    "DeviceGroup",
    "Document",
    "Notification",
    "ObjectKey",
    "PatchFeed",
    "PatchWindow",
    "ReportSchedule",
    "ScanSchedule",
    "Script",
    "ScriptJob",
    "Tenant",
    "Whitelist",
]
