"""Jobs the planner issues: deterministic ids and the payload an agent receives.

Purely computational. The id is a hash of what makes a job unique (device, kind, patch set and the
window occurrence or trigger), so planning twice on the same input issues nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from controller.core.observed import JobKind
from controller.kinds import Script
from controller.kinds.windows import RebootOption


def job_id(device_id: str, kind: JobKind, patch_ids: Iterable[str], occasion: str) -> str:
    """`<kind>-<24 hex>`: stable for the same device, kind, patch set and occasion."""
    material = "\x1f".join((device_id, kind.value, ",".join(sorted(patch_ids)), occasion))
    return f"{kind.value}-{hashlib.sha256(material.encode()).hexdigest()[:24]}"


@dataclass(frozen=True, slots=True)
class ScriptPayload:
    """A script as delivered: content pinned to the revision the job was planned from."""

    name: str
    shell: str
    content: str
    timeout_seconds: int
    success_codes: tuple[int, ...]

    @classmethod
    def of(cls, script: Script) -> ScriptPayload:
        return cls(
            name=script.name,
            shell=script.spec.shell.value,
            content=script.spec.content,
            timeout_seconds=int(script.spec.timeout.total_seconds()),
            success_codes=script.spec.success_codes,
        )


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to issue."""

    id: str
    device_id: str
    kind: JobKind
    reason: (
        str  # why: "initial scan", "scan due (last 2026-11-20T02:00Z)", "window ... occurrence ..."
    )
    patch_ids: tuple[str, ...] = ()
    window: str | None = None  # "tenant/name" of the PatchWindow (installs)
    occurrence: str | None = None  # occurrence or trigger key
    reboot: RebootOption | None = None
    pre_script: ScriptPayload | None = None
    post_script: ScriptPayload | None = None
    script: ScriptPayload | None = None  # ScriptJob
    deadline: datetime | None = None
    revision: str | None = None
