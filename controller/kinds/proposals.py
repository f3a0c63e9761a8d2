"""ApprovalProposal: the controller proposes Approval files for patches that wait for approval.

Like Renovate's pull requests for dependency updates (its `minimumReleaseAge`, `prConcurrentLimit`,
`labels` and `reviewers` options), but the merge of the proposal is the human approval: nothing
is installed before a person merges it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from controller.kinds.common import (
    CronExpression,
    Document,
    Duration,
    Model,
    Name,
    PositiveDuration,
    TimeZone,
)
from controller.kinds.windows import Recurrence
from controller.vocabularies import FORGE_LABEL_PATTERN, FORGE_USER_PATTERN

DEFAULT_TIMEZONE = "UTC"
# `cron: "0 7 * * MON"` reads "on Monday from 07:00": an hour leaves room for a few passes of the
# service (and a pass that takes long) without stretching into the rest of the day.
DEFAULT_SCHEDULE_DURATION = timedelta(hours=1)


def _forge_user(value: str) -> str:
    """The user name, without the `@` of a mention (`@alice` is `alice`, as the forges' review
    APIs want it, and as earlier versions took it)."""
    if not re.fullmatch(FORGE_USER_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a forge user name: letters, digits, '-', '_' and '.' (not first "
            "or last), at most 255, no spaces"
        )
    return value.removeprefix("@")


def _forge_label(value: str) -> str:
    if not re.fullmatch(FORGE_LABEL_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a pull request label: 1 to 50 characters, no comma, no leading "
            "or trailing space"
        )
    return value


ForgeUser = Annotated[
    str,
    AfterValidator(_forge_user),
    WithJsonSchema({"type": "string", "pattern": FORGE_USER_PATTERN, "examples": ["alice"]}),
]
ForgeLabel = Annotated[
    str,
    AfterValidator(_forge_label),
    WithJsonSchema({"type": "string", "pattern": FORGE_LABEL_PATTERN, "examples": ["patches"]}),
]


class ProposalSchedule(Model):
    """When proposals may be opened or updated (Renovate's `schedule`): the times an occurrence
    is open. Outside them the branches and pull requests stay as they are; a proposal nothing is
    left in is still removed at once. `cron: X` is short for `recurrence: {cron: X}`."""

    recurrence: Recurrence | None = Field(
        default=None,
        description="When an occurrence opens (cron, patchTuesday, once); or use `cron`.",
    )
    cron: CronExpression | None = Field(
        default=None,
        description="Short for `recurrence: {cron: ...}`: a 5-field cron expression.",
    )
    timezone: TimeZone | None = Field(
        default=None,
        description="IANA time zone of the recurrence; default: the spec's `timezone`, else UTC.",
    )
    duration: PositiveDuration = Field(
        default=DEFAULT_SCHEDULE_DURATION,
        description="How long each occurrence stays open, e.g. 4h; default 1h (`cron: "
        '"0 7 * * MON"`: Mondays 07:00-08:00).',
    )

    @model_validator(mode="after")
    def _one_recurrence(self) -> Self:
        if self.recurrence is None and self.cron is None:
            raise ValueError("set recurrence (cron, patchTuesday or once) or its shorthand cron")
        if self.recurrence is not None and self.cron is not None:
            raise ValueError("set recurrence or its shorthand cron, not both")
        return self

    def occurrences(self) -> Recurrence:
        """The recurrence, written out or as the `cron` shorthand."""
        return self.recurrence or Recurrence(cron=self.cron)


class GroupBy(StrEnum):
    """How pending patches are gathered into proposals."""

    TENANT = "tenant"  # one proposal per tenant and baseline


class ApprovalProposalSpec(Model):
    baselines: tuple[Name, ...] = Field(
        default=(),
        description="Names of the baselines proposed for the devices of the proposal's tenant "
        "and its clients (every tenant when it has none); empty = every baseline. Each must "
        "name a Baseline of the proposal's tenant, its clients, its partner or every tenant. "
        "One proposal per tenant and baseline.",
    )
    group_by: GroupBy = Field(
        default=GroupBy.TENANT,
        description="`tenant` (the only grouping): one proposal per tenant and baseline.",
    )
    minimum_release_age: Duration = Field(
        default=timedelta(days=3),
        description="Soak: a patch is proposed only this long after its release date (UTC "
        "midnight); 0s proposes it on its release day. A patch whose release date is unknown "
        "is never proposed.",
    )
    max_open: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Most proposal branches open at once for this object; the oldest-named "
        "(tenant, baseline) pairs come first.",
    )
    labels: tuple[ForgeLabel, ...] = Field(
        default=(),
        description="Labels set on the pull/merge request opened through the forge: 1 to 50 "
        "characters, no comma, no leading or trailing space.",
    )
    reviewers: tuple[ForgeUser, ...] = Field(
        default=(),
        description="Forge user names asked to review the pull/merge request: letters, digits, "
        "'-', '_' and '.' (not first or last), at most 255.",
    )
    schedule: ProposalSchedule | None = Field(
        default=None,
        description="Open and update proposals only while an occurrence of this schedule is "
        "open (e.g. cron `0 6 * * 1`, duration 4h: Monday mornings); default: after every pass.",
    )
    # After `schedule`, which its check reads.
    timezone: TimeZone | None = Field(
        default=None,
        description="IANA time zone of the schedule, as `schedule.timezone` (give one, or the "
        "same in both); default UTC.",
    )

    @field_validator("timezone")
    @classmethod
    def _schedule_timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "schedule" not in info.data:  # the schedule has errors of its own
            return value
        schedule = info.data["schedule"]
        if schedule is None:
            raise ValueError(f"{value!r} is the schedule's time zone, but no schedule is set")
        if schedule.timezone not in (None, value):
            raise ValueError(
                f"{value!r} differs from schedule.timezone {schedule.timezone!r}: give the "
                "time zone once"
            )
        return value

    def schedule_timezone(self) -> str:
        """The schedule's time zone: its own, else the spec's, else UTC."""
        own = self.schedule.timezone if self.schedule is not None else None
        return own or self.timezone or DEFAULT_TIMEZONE


class ApprovalProposal(Document):
    """Branches (and, with a forge, pull requests) proposing Approvals for pending patches."""

    KIND: ClassVar[str] = "ApprovalProposal"
    kind: Literal["ApprovalProposal"] = Field(description="Always `ApprovalProposal`.")
    spec: ApprovalProposalSpec = Field(description="Baselines, soak, limit, labels, reviewers.")
