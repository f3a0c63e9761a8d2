"""Script and ScriptJob: run-book automation, pre/post scripts and custom scheduled jobs."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema, model_validator

from controller.kinds.common import (
    Document,
    Model,
    Name,
    OsFamily,
    PositiveDuration,
    Targets,
    TimeZone,
    format_duration,
)
from controller.kinds.windows import Recurrence

MAX_SCRIPT_BYTES = 64 * 1024
# A script holds up its job (and a window's installs) until it ends; one that may run for more
# than a day is a mistake, and its job's run timeout (timeout + 30 min) would hide a lost agent.
MAX_SCRIPT_TIMEOUT = timedelta(hours=24)
# The exit codes a process can end with: POSIX keeps the low 8 bits; Windows a 32-bit DWORD
# (3010, "success, reboot required", is a common success code of installers).
EXIT_CODES_BY_OS = {OsFamily.LINUX: 255, OsFamily.WINDOWS: 2**32 - 1}


class Shell(StrEnum):
    BASH = "bash"
    SH = "sh"
    POWERSHELL = "powershell"


SHELLS_BY_OS = {
    OsFamily.LINUX: frozenset({Shell.BASH, Shell.SH}),
    OsFamily.WINDOWS: frozenset({Shell.POWERSHELL}),
}


def _within_script_timeout(value: timedelta) -> timedelta:
    if value > MAX_SCRIPT_TIMEOUT:
        raise ValueError(f"{format_duration(value)} is longer than a script may run (24h)")
    return value


def _exit_code(value: int, info: ValidationInfo) -> int:
    """An exit code the script's OS can report (any OS's when `os` itself is invalid)."""
    os_family = info.data.get("os")
    if isinstance(os_family, OsFamily):
        highest, where = EXIT_CODES_BY_OS[os_family], f"a {os_family} process"
    else:
        highest, where = max(EXIT_CODES_BY_OS.values()), "a process"
    if not 0 <= value <= highest:
        raise ValueError(f"{value} is not an exit code {where} can end with (0-{highest})")
    return value


ExitCode = Annotated[
    int,
    AfterValidator(_exit_code),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": max(EXIT_CODES_BY_OS.values())}),
]


class ScriptSpec(Model):
    os: OsFamily = Field(description="Operating system the script runs on.")
    shell: Shell = Field(description="bash | sh (Linux) or powershell (Windows).")
    timeout: Annotated[PositiveDuration, AfterValidator(_within_script_timeout)] = Field(
        default=timedelta(minutes=5),
        description="Killed after this long: longer than 0s, at most 24h.",
    )
    success_codes: tuple[ExitCode, ...] = Field(
        default=(0,),
        min_length=1,
        description="Exit codes that count as success: 0-255 on Linux, 0-4294967295 on Windows.",
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
