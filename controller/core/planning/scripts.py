"""Script jobs (ScriptJob): the latest scheduled start within the look-back period and the
job that runs its script on a device; scripts resolved for windows and script jobs.

Purely computational, no side effects.
"""

from __future__ import annotations

from datetime import datetime

from controller.core import jobs, windows
from controller.core.desired import DesiredState
from controller.core.jobs import JobSpec, ScriptPayload, job_id
from controller.core.observed import DeviceView, JobKind
from controller.core.planning.values import SCRIPT_JOB_LOOKBACK
from controller.kinds import PatchWindow, Script, ScriptJob


def payload(
    desired: DesiredState, owner: PatchWindow | ScriptJob, name: str | None
) -> ScriptPayload | None:
    """The script `name` as the owner's tenant sees it, ready to send; None if none or unknown."""
    if name is None:
        return None
    script = desired.visible(Script, owner.tenant, name)
    return ScriptPayload.of(script) if script is not None else None


def job_for(
    device: DeviceView,
    script_job: ScriptJob,
    script: ScriptPayload,
    *,
    start: datetime,
    revision: str | None,
) -> JobSpec:
    """The job running `script_job`'s script on `device` for its start at `start`."""
    occasion = f"{script_job.tenant or '*'}/{script_job.name}@{windows.occurrence_key(start)}"
    return JobSpec(
        id=job_id(device.id, JobKind.SCRIPT, (), occasion),
        device_id=device.id,
        kind=JobKind.SCRIPT,
        reason=f"ScriptJob {occasion}",
        occurrence=occasion,
        script=script,
        deadline=start + SCRIPT_JOB_LOOKBACK,
        revision=revision,
        run_timeout=jobs.run_timeout(JobKind.SCRIPT, scripts=(script,)),
    )


def next_change(script_job: ScriptJob, *, now: datetime) -> datetime | None:
    """When `latest_start` may next give another answer: the next start, or when the latest
    one leaves the look-back period (None: never)."""
    spec = script_job.spec
    instants = [windows.next_start(spec.recurrence, spec.timezone, after=now)]
    latest = latest_start(script_job, now=now)
    if latest is not None:
        instants.append(latest + SCRIPT_JOB_LOOKBACK)
    return min((i for i in instants if i is not None), default=None)


def latest_start(script_job: ScriptJob, *, now: datetime) -> datetime | None:
    """The most recent scheduled start in the look-back period, if any."""
    latest = None
    cursor = now - SCRIPT_JOB_LOOKBACK
    while True:
        start = windows.next_start(
            script_job.spec.recurrence, script_job.spec.timezone, after=cursor
        )
        if start is None or start > now:
            return latest
        latest, cursor = start, start
