"""PatchWindow: when installs may run, how, and on which devices."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from controller.kinds.common import (
    CountOrPercent,
    CronExpression,
    Document,
    Duration,
    Model,
    Name,
    PositiveDuration,
    Targets,
    TimeZone,
    parse_quantity,
)


class ApprovalMode(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


class RebootOption(StrEnum):
    NEVER = "never"
    IF_REQUIRED = "if-required"
    ALWAYS = "always"


class MissedWindow(StrEnum):
    NEXT_WINDOW = "next-window"
    CATCH_UP = "catch-up"


def _check_clock(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return value


ClockTime = Annotated[
    str, AfterValidator(_check_clock), WithJsonSchema({"type": "string", "examples": ["02:00"]})
]


class PatchTuesday(Model):
    """Microsoft's release day (second Tuesday of the month) plus an offset."""

    offset_days: int = Field(default=0, ge=0, le=26, description="Days after Patch Tuesday (0-26).")
    at: ClockTime = Field(default="02:00", description="Local start time, HH:MM.")

    def start_time(self) -> time:
        hour, minute = self.at.split(":")
        return time(int(hour), int(minute))


class Recurrence(Model):
    """Exactly one of `cron`, `patchTuesday` or `once`."""

    cron: CronExpression | None = Field(
        default=None, description="5-field cron expression in the window's time zone."
    )
    patch_tuesday: PatchTuesday | None = Field(
        default=None, description="Second Tuesday of the month plus `offsetDays`, at `at`."
    )
    once: datetime | None = Field(
        default=None,
        description="A single occurrence (emergency window), local time in the window's time zone.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [v for v in (self.cron, self.patch_tuesday, self.once) if v is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of cron, patchTuesday or once")
        if self.once is not None and self.once.tzinfo is not None:
            raise ValueError("`once` is local time in the window's timezone: drop the UTC offset")
        return self


class AutoApprove(Model):
    released_after_days: int = Field(
        default=0,
        ge=0,
        le=365,
        description="Auto-approve only patches released this many days ago.",
    )


class Rollout(Model):
    max_concurrent: CountOrPercent = Field(
        default_factory=lambda: parse_quantity("100%"),
        description="Installs running at once, a count or a percentage of the targeted devices.",
    )
    max_failures: CountOrPercent = Field(
        default_factory=lambda: parse_quantity("100%"),
        description="Stop starting installs in an occurrence past this many failed devices.",
    )


class PatchWindowSpec(Model):
    targets: Targets = Field(description="Devices patched in this window.")
    recurrence: Recurrence = Field(description="When the window opens.")
    timezone: TimeZone = Field(description="IANA time zone of the recurrence, e.g. Europe/Berlin.")
    duration: PositiveDuration = Field(description="How long each occurrence stays open.")
    cutoff: Duration = Field(
        default=timedelta(0), description="No new installs start in the last part of the window."
    )
    approval: ApprovalMode = Field(
        default=ApprovalMode.MANUAL,
        description="`auto` approves whitelisted security/critical patches (Windows devices only).",
    )
    auto_approve: AutoApprove = Field(
        default_factory=AutoApprove, description="Conditions of auto-approval."
    )
    reboot: RebootOption = Field(
        default=RebootOption.IF_REQUIRED, description="never | if-required | always."
    )
    rollout: Rollout = Field(default_factory=Rollout, description="Concurrency and failure limits.")
    missed_window: MissedWindow = Field(
        default=MissedWindow.NEXT_WINDOW,
        description="Offline during the window: wait for the `next-window`, or `catch-up` at the "
        "next check-in within `catchUpWithin`.",
    )
    catch_up_within: PositiveDuration = Field(
        default=timedelta(days=1), description="How long after an occurrence a catch-up may start."
    )
    maintenance: bool = Field(
        default=False, description="Suppress device-down alerts while the window is open."
    )
    pre_script: Name | None = Field(default=None, description="Script run before installing.")
    post_script: Name | None = Field(default=None, description="Script run after installing.")
    suspend: bool = Field(default=False, description="A suspended window never opens.")

    @model_validator(mode="after")
    def _cutoff_inside_duration(self) -> Self:
        if self.cutoff >= self.duration:
            raise ValueError("cutoff must be shorter than duration, or no install could ever start")
        return self


class PatchWindow(Document):
    """When, how and where installs may run."""

    KIND: ClassVar[str] = "PatchWindow"
    kind: Literal["PatchWindow"] = Field(description="Always `PatchWindow`.")
    spec: PatchWindowSpec = Field(description="Recurrence, duration, approval and rollout.")
