"""Script and ScriptJob: run-book automation, pre/post scripts and custom scheduled jobs."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from controller.kinds.common import (
    Document,
    Duration,
    Model,
    Name,
    OsFamily,
    Targets,
    TimeZone,
)
from controller.kinds.windows import Recurrence

MAX_SCRIPT_BYTES = 64 * 1024


class Shell(StrEnum):
    BASH = "bash"
    SH = "sh"
    POWERSHELL = "powershell"


SHELLS_BY_OS = {
    OsFamily.LINUX: frozenset({Shell.BASH, Shell.SH}),
    OsFamily.WINDOWS: frozenset({Shell.POWERSHELL}),
}


class ScriptSpec(Model):
    os: OsFamily = Field(description="Operating system the script runs on.")
    shell: Shell = Field(description="bash | sh (Linux) or powershell (Windows).")
    timeout: Duration = Field(default=timedelta(minutes=5), description="Killed after this long.")
    success_codes: tuple[int, ...] = Field(
        default=(0,), min_length=1, description="Exit codes that count as success."
    )
    content: str = Field(
        min_length=1, max_length=MAX_SCRIPT_BYTES, description="The script itself."
    )

    @model_validator(mode="after")
    def _shell_fits_os(self) -> Self:
        if self.shell not in SHELLS_BY_OS[self.os]:
            allowed = ", ".join(sorted(SHELLS_BY_OS[self.os]))
            raise ValueError(f"shell {self.shell} does not run on {self.os}; use {allowed}")
        return self


class Script(Document):
    """A script that windows (preScript/postScript) and ScriptJobs refer to by name."""

    KIND: ClassVar[str] = "Script"
    kind: Literal["Script"] = Field(description="Always `Script`.")
    spec: ScriptSpec = Field(description="OS, shell, timeout and content.")


class ScriptJobSpec(Model):
    script: Name = Field(description="The Script to run (same tenant, a parent, or global).")
    targets: Targets = Field(description="Devices the script runs on.")
    recurrence: Recurrence = Field(description="When it runs.")
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the recurrence.")


class ScriptJob(Document):
    """A custom job: a script (e.g. a third-party patch automation) on a schedule."""

    KIND: ClassVar[str] = "ScriptJob"
    kind: Literal["ScriptJob"] = Field(description="Always `ScriptJob`.")
    spec: ScriptJobSpec = Field(description="Script, targets and recurrence.")
