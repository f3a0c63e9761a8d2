"""The compliance report as a value: what every renderer draws from, built by `collect`.

Frozen dataclasses only; the summaries are derived from the per-device rows by `summarise`, so
a report narrowed to one baseline or one device (`narrow`) stays consistent with itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from controller.core.compliance import ComplianceState, PatchState
from controller.kinds.common import Severity

SEVERITY_ORDER: tuple[Severity, ...] = (
    Severity.CRITICAL,
    Severity.IMPORTANT,
    Severity.MODERATE,
    Severity.LOW,
    Severity.UNSPECIFIED,
)
STATE_ORDER: tuple[ComplianceState, ...] = (
    ComplianceState.COMPLIANT,
    ComplianceState.NON_COMPLIANT,
    ComplianceState.UNKNOWN,
)
BASELINE_PREFIX = "Baseline "


def baseline_name(ref: str) -> str:
    """`acme/windows-servers` for the stored reference `Baseline acme/windows-servers`."""
    return ref.removeprefix(BASELINE_PREFIX)


def percent(part: int, whole: int) -> float:
    """`part` of `whole` in percent, one decimal; 0.0 for an empty whole."""
    return round(100.0 * part / whole, 1) if whole else 0.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One required patch that keeps a device from being compliant."""

    patch_id: str
    state: PatchState
    severity: Severity = Severity.UNSPECIFIED  # unspecified: neither catalogue nor agent knew
    reason: str | None = None  # why the last install failed, as the agent said


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device against one baseline."""

    device_id: str
    device: str
    tenant: str
    os: str
    baseline: str  # the stored reference, `Baseline tenant/name`
    state: ComplianceState
    evaluated_at: datetime
    revision: str  # the policy revision the verdict was computed from
    scanned_at: datetime | None = None
    findings: tuple[Finding, ...] = ()
    installed: int = 0
    reboot_pending: bool = False  # the OS asks for a reboot, or installed patches wait for one

    def with_state(self, state: PatchState) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.state is state)

    @property
    def missing(self) -> tuple[Finding, ...]:
        return self.with_state(PatchState.MISSING)

    @property
    def failed(self) -> tuple[Finding, ...]:
        return self.with_state(PatchState.FAILED)

    @property
    def pending_reboot(self) -> tuple[Finding, ...]:
        return self.with_state(PatchState.INSTALLED_PENDING_REBOOT)

    @property
    def rejected(self) -> tuple[Finding, ...]:
        return self.with_state(PatchState.INSTALLED_REJECTED)

    @property
    def worst_severity(self) -> Severity | None:
        """The most severe finding's severity; None without findings."""
        ranks = [SEVERITY_ORDER.index(f.severity) for f in self.findings]
        return SEVERITY_ORDER[min(ranks)] if ranks else None


@dataclass(frozen=True, slots=True)
class StateCounts:
    """How many (device, baseline) verdicts are in each compliance state."""

    compliant: int = 0
    non_compliant: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.compliant + self.non_compliant + self.unknown

    @property
    def compliant_percent(self) -> float:
        """Compliant verdicts out of all of them (unknown ones count as not compliant)."""
        return percent(self.compliant, self.total)

    def of(self, state: ComplianceState) -> int:
        return {
            ComplianceState.COMPLIANT: self.compliant,
            ComplianceState.NON_COMPLIANT: self.non_compliant,
            ComplianceState.UNKNOWN: self.unknown,
        }[state]


@dataclass(frozen=True, slots=True)
class BaselineSummary:
    """The verdicts of one baseline, with the non-compliant ones broken down by severity."""

    baseline: str
    counts: StateCounts
    # non-compliant devices by the severity of their most severe finding
    non_compliant_by_severity: tuple[tuple[Severity, int], ...] = ()
    # missing and failed patches (device and patch) by severity
    findings_by_severity: tuple[tuple[Severity, int], ...] = ()

    @property
    def name(self) -> str:
        return baseline_name(self.baseline)


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """Required, missing and not approved patches of one device (DESIGN.md 3.5)."""

    device_id: str
    device: str
    tenant: str
    patches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingReboot:
    """A device that waits for a reboot to finish installing."""

    device_id: str
    device: str
    tenant: str
    patches: tuple[str, ...]  # the patches installed but waiting for the reboot, when known
    since: datetime | None  # the scan that reported it


@dataclass(frozen=True, slots=True)
class InstallDay:
    """Patch install results of one UTC day."""

    day: date
    installed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """The share of compliant verdicts on one day (the last report of that day)."""

    day: date
    compliant_percent: float


@dataclass(frozen=True, slots=True)
class ReportData:
    """A compliance report of a tenant with its clients, or of every tenant (`tenant` None)."""

    tenant: str | None
    revision: str | None
    generated_at: datetime
    devices: tuple[DeviceRow, ...] = ()
    baselines: tuple[BaselineSummary, ...] = ()
    pending_approvals: tuple[PendingApproval, ...] | None = None  # None: not known (no plan)
    pending_reboots: tuple[PendingReboot, ...] = ()
    installs: tuple[InstallDay, ...] = ()
    trend: tuple[TrendPoint, ...] = ()
    subject: str | None = field(default=None)  # a baseline or device this report was narrowed to

    @property
    def scope(self) -> str:
        """What the report covers, for titles: `acme/retail`, or `all tenants`."""
        scope = self.tenant or "all tenants"
        return f"{scope} — {self.subject}" if self.subject else scope

    @property
    def counts(self) -> StateCounts:
        return state_counts(self.devices)

    @property
    def device_count(self) -> int:
        return len({row.device_id for row in self.devices})

    @property
    def compliant_devices(self) -> int:
        """Devices compliant with every baseline that applies to them."""
        states: dict[str, set[ComplianceState]] = {}
        for row in self.devices:
            states.setdefault(row.device_id, set()).add(row.state)
        return sum(1 for seen in states.values() if seen == {ComplianceState.COMPLIANT})

    @property
    def installs_total(self) -> InstallDay:
        """The install results of the whole period, dated its last day."""
        last = self.installs[-1].day if self.installs else self.generated_at.date()
        return InstallDay(
            last, sum(d.installed for d in self.installs), sum(d.failed for d in self.installs)
        )


def state_counts(rows: tuple[DeviceRow, ...] | list[DeviceRow]) -> StateCounts:
    """Purely computational: the verdicts of `rows` counted by state."""
    counter = Counter(row.state for row in rows)
    return StateCounts(
        compliant=counter[ComplianceState.COMPLIANT],
        non_compliant=counter[ComplianceState.NON_COMPLIANT],
        unknown=counter[ComplianceState.UNKNOWN],
    )


def summarise(rows: tuple[DeviceRow, ...]) -> tuple[BaselineSummary, ...]:
    """Purely computational: one summary per baseline, in baseline order."""
    by_baseline: dict[str, list[DeviceRow]] = {}
    for row in rows:
        by_baseline.setdefault(row.baseline, []).append(row)
    summaries = []
    for baseline in sorted(by_baseline):
        group = by_baseline[baseline]
        worst = Counter(
            row.worst_severity
            for row in group
            if row.state is ComplianceState.NON_COMPLIANT and row.worst_severity is not None
        )
        findings = Counter(
            f.severity
            for row in group
            for f in row.findings
            if f.state in {PatchState.MISSING, PatchState.FAILED}
        )
        summaries.append(
            BaselineSummary(
                baseline=baseline,
                counts=state_counts(group),
                non_compliant_by_severity=_by_severity(worst),
                findings_by_severity=_by_severity(findings),
            )
        )
    return tuple(summaries)


def _by_severity(counter: Counter[Severity]) -> tuple[tuple[Severity, int], ...]:
    return tuple((s, counter[s]) for s in SEVERITY_ORDER if counter[s])


def narrow(
    data: ReportData, *, baseline: str | None = None, device_id: str | None = None
) -> ReportData:
    """Purely computational: the report restricted to one baseline or one device.

    The trend and the install history are the collected scope's and are dropped: a narrowed
    report has no history of its own.
    """
    rows = tuple(
        row
        for row in data.devices
        if (baseline is None or row.baseline == baseline)
        and (device_id is None or row.device_id == device_id)
    )
    devices = {row.device_id for row in rows} if device_id is None else {device_id}
    subject: str | None
    if baseline is not None:
        subject = baseline_name(baseline)
    elif rows:
        subject = f"{rows[0].tenant}/{rows[0].device}"
    else:
        subject = device_id
    pending = (
        tuple(p for p in data.pending_approvals if p.device_id in devices)
        if data.pending_approvals is not None
        else None
    )
    return replace(
        data,
        devices=rows,
        baselines=summarise(rows),
        pending_approvals=pending,
        pending_reboots=tuple(r for r in data.pending_reboots if r.device_id in devices),
        installs=(),
        trend=(),
        subject=subject,
    )
