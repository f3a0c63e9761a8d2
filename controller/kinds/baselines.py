"""Baseline: what "compliant" means for a set of devices."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from controller.kinds.common import (
    Classification,
    Document,
    Model,
    OsFamily,
    PatchId,
    PositiveDuration,
    Severity,
    Targets,
)


class ExcludeAction(StrEnum):
    BLOCK = "block"
    ALLOW_AS_DEPENDENCY = "allow-as-dependency"


class Rule(Model):
    """A patch is required when it matches every condition a rule sets (unset = any)."""

    classifications: tuple[Classification, ...] = Field(
        default=(), description="Patch classifications the rule matches; empty = any."
    )
    severities: tuple[Severity, ...] = Field(
        default=(), description="Patch severities the rule matches; empty = any."
    )
    products: tuple[str, ...] = Field(
        default=(), description="Glob patterns on the patch's product; empty = any."
    )
    min_rating: float | None = Field(
        default=None, ge=0, le=10, description="Lowest rating (0-10, CVSS or vendor) that matches."
    )
    released_after_days: int = Field(
        default=0,
        ge=0,
        le=3650,
        description="Grace period: a patch counts only this many days after its release.",
    )


class BaselineSpec(Model):
    os: OsFamily = Field(description="Operating system family the baseline is written for.")
    targets: Targets = Field(description="Devices this baseline applies to.")
    rules: tuple[Rule, ...] = Field(
        default=(), description="A patch is required when it matches any rule."
    )
    include: tuple[PatchId, ...] = Field(default=(), description="Patch ids always required.")
    exclude: tuple[PatchId, ...] = Field(
        default=(), description="Patch ids never required and never installed (rejected)."
    )
    exclude_action: ExcludeAction = Field(
        default=ExcludeAction.BLOCK,
        description="`block`: an installed excluded patch makes the device non-compliant; "
        "`allow-as-dependency`: it is tolerated.",
    )
    stale_scan_after: PositiveDuration = Field(
        default=timedelta(days=7),
        description="Without a scan newer than this, compliance is `unknown`.",
    )


class Baseline(Document):
    """Which patches are required for the targeted devices."""

    KIND: ClassVar[str] = "Baseline"
    kind: Literal["Baseline"] = Field(description="Always `Baseline`.")
    spec: BaselineSpec = Field(description="Rules, includes, excludes and targets.")
