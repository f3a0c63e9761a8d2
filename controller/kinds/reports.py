"""ReportSchedule: compliance reports written back on a recurrence."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import Document, Model, TimeZone
from controller.kinds.windows import Recurrence
from controller.vocabularies import ReportFormat as ReportFormat  # noqa: PLC0414 - re-exported


class ReportScope(StrEnum):
    TENANT = "tenant"
    BASELINE = "baseline"
    DEVICE = "device"


class ReportScheduleSpec(Model):
    recurrence: Recurrence = Field(description="When reports are written.")
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the recurrence.")
    formats: tuple[ReportFormat, ...] = Field(
        default=(ReportFormat.MARKDOWN, ReportFormat.JSON),
        min_length=1,
        description="Formats written.",
    )
    scope: ReportScope = Field(
        default=ReportScope.TENANT, description="One report per tenant, baseline or device."
    )


class ReportSchedule(Document):
    """Writes compliance reports back to the reports branch and the subscribed channels."""

    KIND: ClassVar[str] = "ReportSchedule"
    kind: Literal["ReportSchedule"] = Field(description="Always `ReportSchedule`.")
    spec: ReportScheduleSpec = Field(description="Recurrence, formats and scope.")
