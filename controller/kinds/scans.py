"""ScanSchedule: how often targeted devices scan for missing patches."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import Document, Model, PositiveDuration, Targets

DEFAULT_SCAN_INTERVAL = timedelta(hours=24)


class ScanScheduleSpec(Model):
    targets: Targets = Field(description="Devices scanned on this schedule.")
    every: PositiveDuration = Field(
        default=DEFAULT_SCAN_INTERVAL, description="Scan when the last scan is older than this."
    )


class ScanSchedule(Document):
    """Scans also run right after enrolment and after every install."""

    KIND: ClassVar[str] = "ScanSchedule"
    kind: Literal["ScanSchedule"] = Field(description="Always `ScanSchedule`.")
    spec: ScanScheduleSpec = Field(description="Targets and interval.")
