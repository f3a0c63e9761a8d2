"""Builders for planner tests: policy from YAML text, devices, scans and jobs as plain values.

`desired()` is a policy of tenant acme (client retail): groups windows and linux, a Windows
baseline (security and critical, released 7 days ago, KB-BAD excluded), a Linux baseline
(security), a whitelist and the weekly window `acme/weekly` (Sunday 02:00 Europe/Berlin, 4 h,
auto-approval after 3 days). `CATALOGUE` holds nine patches (KB-SEC, KB-CRIT, KB-BUG, KB-NEW,
KB-ANCIENT, KB-BAD, KB-OLD superseded by KB-SEC, USN-1-1, USN-2-1). Times are relative to
`SUNDAY_OPEN`, half an hour into that window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from controller.core.desired import DesiredState
from controller.core.ids import JobId
from controller.core.observed import (
    DeviceView,
    JobKind,
    JobLedger,
    JobState,
    JobView,
    ObservedState,
    ScanView,
)
from controller.core.patches import PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.sources.loading import SourceFile, load_policy

# Sunday 2026-11-29 02:00 Europe/Berlin = 01:00 UTC: the weekly window opens.
SUNDAY_OPEN = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)

BASE = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: windows, tenant: acme}
spec: {selector: {os: windows}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux, tenant: acme}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: win, tenant: acme}
spec:
  os: windows
  targets: {groups: [windows]}
  rules: [{classifications: [security, critical], releasedAfterDays: 7}]
  exclude: [KB-BAD]
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: lin, tenant: acme}
spec:
  os: linux
  targets: {groups: [linux]}
  rules: [{classifications: [security]}]
---
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: filters, tenant: acme}
spec:
  targets: {groups: [windows, linux]}
  patches: [{classifications: [security, critical]}]
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: weekly, tenant: acme}
spec:
  targets: {groups: [windows, linux]}
  recurrence: {cron: "0 2 * * SUN"}
  timezone: Europe/Berlin
  duration: 4h
  cutoff: 1h
  approval: auto
  autoApprove: {releasedAfterDays: 3}
  rollout: {maxConcurrent: ROLLOUT_CONCURRENT, maxFailures: ROLLOUT_FAILURES}
  suspend: SUSPEND
"""


def desired(
    extra: str = "", *, concurrent: str = "100%", failures: str = "100%", suspend: bool = False
) -> DesiredState:
    """The base policy with `extra` YAML documents appended; `concurrent`/`failures` are the
    window's rollout limits (counts or percentages), `suspend` suspends it."""
    text = (
        BASE.replace("ROLLOUT_CONCURRENT", concurrent)
        .replace("ROLLOUT_FAILURES", failures)
        .replace("SUSPEND", str(suspend).lower())
    )
    if extra:
        text += "---\n" + extra
    result = load_policy([SourceFile("policies/all.yaml", text.encode())], revision="main@sha1:abc")
    assert result.state is not None, [str(p) for p in result.problems]
    return result.state


def patch(
    patch_id: str,
    *,
    os: OsFamily = OsFamily.WINDOWS,
    classification: Classification = Classification.SECURITY,
    severity: Severity = Severity.CRITICAL,
    age_days: int = 30,
    superseded_by: tuple[str, ...] = (),
) -> PatchRecord:
    """A catalogue record released `age_days` before 2026-11-29."""
    return PatchRecord(
        id=patch_id,
        os=os,
        vendor="microsoft" if os is OsFamily.WINDOWS else "ubuntu",
        classification=classification,
        severity=severity,
        released=date(2026, 11, 29) - timedelta(days=age_days),
        superseded_by=superseded_by,
    )


CATALOGUE = {
    p.id: p
    for p in (
        patch("KB-SEC"),
        patch("KB-CRIT", classification=Classification.CRITICAL),
        patch("KB-BUG", classification=Classification.BUGFIX),
        patch("KB-NEW", age_days=1),
        patch("KB-ANCIENT", age_days=400),
        patch("KB-BAD"),
        patch("KB-OLD", superseded_by=("KB-SEC",)),
        patch("USN-1-1", os=OsFamily.LINUX),
        patch("USN-2-1", os=OsFamily.LINUX),
    )
}


def device(
    name: str,
    *,
    os: OsFamily = OsFamily.WINDOWS,
    tenant: str = "acme/retail",
    online: bool = True,
    role: str = "server",
    now: datetime = SUNDAY_OPEN,
) -> DeviceView:
    """A device `id-<name>` enrolled 30 days before `now`, polling every 60 s; seen 30 s ago
    when `online`, two hours ago otherwise."""
    return DeviceView(
        id=f"id-{name}",
        tenant=tenant,
        name=name,
        os=os,
        os_name="Windows Server 2022" if os is OsFamily.WINDOWS else "Ubuntu",
        os_version="21H2" if os is OsFamily.WINDOWS else "24.04",
        role=role,
        enrolled_at=now - timedelta(days=30),
        last_seen=now - (timedelta(seconds=30) if online else timedelta(hours=2)),
        poll_interval=timedelta(seconds=60),
    )


def scan(
    *missing: str,
    installed: tuple[str, ...] = (),
    age: timedelta = timedelta(hours=1),
    reboot: bool = False,
    now: datetime = SUNDAY_OPEN,
) -> ScanView:
    """A scan taken `age` before `now` that found `missing` patch ids."""
    return ScanView(
        scanned_at=now - age, reboot_required=reboot, missing=missing, installed=installed
    )


def observed(
    *pairs: tuple[DeviceView, ScanView | None], jobs: tuple[JobView, ...] = ()
) -> ObservedState:
    """The observed state of (device, its latest scan or None) pairs over `CATALOGUE`."""
    return ObservedState(
        devices=tuple(d for d, _ in pairs),
        scans={d.id: s for d, s in pairs if s is not None},
        jobs=JobLedger.of(jobs),
        catalogue=CATALOGUE,
    )


def job(
    job_id: str,
    device: DeviceView,
    *,
    kind: JobKind = JobKind.INSTALL,
    state: JobState = JobState.PENDING,
    patches: tuple[str, ...] = (),
    window: str | None = "acme/weekly",
    occurrence: str | None = "2026-11-29T01:00Z",
    created: datetime = SUNDAY_OPEN - timedelta(minutes=20),
    **extra: object,
) -> JobView:
    """A job on `device` created `created` (20 minutes before `SUNDAY_OPEN` by default);
    `extra` sets any other `JobView` field."""
    return JobView(
        id=JobId(job_id),
        device_id=device.id,
        kind=kind,
        state=state,
        patch_ids=patches,
        window=window,
        occurrence=occurrence,
        created_at=created,
        updated_at=created,
        **extra,  # type: ignore[arg-type]
    )
