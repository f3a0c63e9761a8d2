"""Apply a Plan to the store in one transaction: jobs, cancellations, expiries, time-outs,
compliance, alerts.

Idempotent by construction: job ids are deterministic (existing ones are left alone), alerts carry
a transition key (raised once), and compliance rows are written only when they changed, so a pass
that changes nothing writes nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controller.core.compliance import BaselineCompliance
from controller.core.jobs import EndReason, JobSpec, ScriptPayload
from controller.core.observed import JobKind, JobState
from controller.core.plan import CONDITION_TYPES, AlertSpec, Plan
from controller.kinds.windows import RebootOption
from controller.store import Connection, jobs
from controller.store import alerts as alert_store
from controller.store import audit as audit_store
from controller.store import compliance as compliance_store
from controller.store.job_states import DELIVERABLE_STATES, STARTED_STATES


@dataclass(frozen=True, slots=True)
class Applied:
    """What one apply wrote."""

    jobs_issued: int
    jobs_cancelled: int
    jobs_expired: int
    jobs_timed_out: int
    compliance_written: int
    alerts_raised: int

    def as_dict(self) -> dict[str, int]:
        return {
            "jobsIssued": self.jobs_issued,
            "jobsCancelled": self.jobs_cancelled,
            "jobsExpired": self.jobs_expired,
            "jobsTimedOut": self.jobs_timed_out,
            "complianceWritten": self.compliance_written,
            "alertsRaised": self.alerts_raised,
        }


def apply_plan(
    conn: Connection,
    plan: Plan,
    *,
    tenants: Mapping[str, str],
    now: datetime,
    replanned: Collection[str] | None = None,
    alerts: Sequence[AlertSpec] | None = None,
) -> Applied:
    """Write the plan; `tenants` maps device id → tenant path. `replanned`: the devices the
    pass planned afresh (an incremental pass); only their compliance rows are compared and
    written. None: every device's (a full pass). `alerts`: the plan's alerts the store may not
    hold yet (`IncrementalPlanner.fresh_alerts`: those not in the last plan this process
    applied); None: every alert of the plan."""
    payloads: dict[_PayloadInputs, dict[str, Any]] = {}  # one per distinct payload
    issued = jobs.insert_jobs(
        conn, [_new_job(j, tenants, plan, payloads) for j in plan.issue], now=now
    )
    cancelled = jobs.end_jobs(
        conn,
        plan.cancel,
        state=JobState.CANCELLED,
        reason=EndReason.NOT_INSTALLABLE,
        only_from=DELIVERABLE_STATES,
        now=now,
    )
    cancelled += jobs.end_jobs(
        conn,
        plan.supersede,
        state=JobState.CANCELLED,
        reason=EndReason.SUPERSEDED,
        only_from=DELIVERABLE_STATES,
        now=now,
    )
    expired = jobs.end_jobs(
        conn,
        plan.expire,
        state=JobState.EXPIRED,
        reason=EndReason.NO_AGENT,
        only_from=DELIVERABLE_STATES,
        now=now,
    )
    timed_out = jobs.end_jobs(
        conn,
        plan.time_out,
        state=JobState.FAILED,
        reason=EndReason.TIMED_OUT,
        only_from=STARTED_STATES,
        now=now,
    )
    records: Sequence[BaselineCompliance] = plan.compliance
    if replanned is not None:
        records = [r for r in records if r.device_id in replanned]
    written = _write_compliance(
        conn, records, tenants, plan.revision or "", now=now, replanned=replanned
    )
    raised = _raise_alerts(conn, plan.alerts if alerts is None else alerts, tenants, now=now)
    _resolve_cleared(conn, plan, now=now)
    if issued:
        _audit_issued(conn, plan.issue, tenants, plan.revision, now=now)
    return Applied(issued, cancelled, expired, timed_out, written, raised)


def _new_job(
    job: JobSpec,
    tenants: Mapping[str, str],
    plan: Plan,
    payloads: dict[_PayloadInputs, dict[str, Any]],
) -> jobs.NewJob:
    """The job to insert; `payloads`: the payloads made so far in this apply, by their inputs.
    An approval's 10,000 installs share one payload object, encoded once by the insert
    (`database.insert_many`) instead of 10,000 times."""
    inputs = _payload_inputs(job)
    payload = payloads.get(inputs)
    if payload is None:
        payload = payloads[inputs] = _payload(inputs)
    return jobs.NewJob(
        id=job.id,
        device_id=job.device_id,
        tenant=tenants[job.device_id],
        kind=job.kind,
        revision=job.revision or plan.revision or "",
        patch_ids=job.patch_ids,
        payload=payload,
        window_key=f"{job.window}@{job.occurrence}" if job.window else None,
        deadline=job.deadline,
        run_timeout_s=int(job.run_timeout.total_seconds()) if job.run_timeout else None,
    )


_PayloadInputs = tuple[
    JobKind,
    str,
    str | None,
    RebootOption | None,
    str | None,
    timedelta | None,
    ScriptPayload | None,
    ScriptPayload | None,
    ScriptPayload | None,
]


def _payload_inputs(job: JobSpec) -> _PayloadInputs:
    """The fields of `job` its payload is made of, all that `_payload` is given: jobs with
    equal inputs have equal payloads."""
    return (
        job.kind,
        job.reason,
        job.occurrence,
        job.reboot,
        job.window,
        job.run_timeout,
        job.pre_script,
        job.post_script,
        job.script,
    )


def _payload(inputs: _PayloadInputs) -> dict[str, Any]:
    """What the agent receives of a job beyond id, kind and patches (DESIGN.md section 4, the
    agent protocol): why, the occasion, the reboot option and pinned scripts."""
    kind, reason, occurrence, reboot, window, run_timeout, pre_script, post_script, script = inputs
    payload: dict[str, Any] = {"reason": reason, "occasion": occurrence}
    if kind is JobKind.INSTALL:
        payload["reboot"] = reboot.value if reboot else "if-required"
        payload["window"] = window
    if run_timeout is not None:  # the agent may size its own timers by it
        payload["runTimeoutSeconds"] = int(run_timeout.total_seconds())
    for name, found in (("preScript", pre_script), ("postScript", post_script), ("script", script)):
        if found is not None:
            payload[name] = _script(found)
    return payload


def _script(script: ScriptPayload) -> dict[str, Any]:
    return {
        "name": script.name,
        "shell": script.shell,
        "content": script.content,
        "timeoutSeconds": script.timeout_seconds,
        "successCodes": list(script.success_codes),
    }


def compliance_document(record: BaselineCompliance) -> dict[str, Any]:
    """The stored form of one compliance record (also what the read API returns)."""
    return {
        "scannedAt": _scanned_at(record),
        "counts": {state.value: n for state, n in record.counts().items()},
        "missing": list(record.missing),
        "failed": list(record.failed),
        "pendingReboot": list(record.pending_reboot),
        "rejected": list(record.rejected),
    }


def _scanned_at(record: BaselineCompliance) -> str | None:
    return record.scanned_at.isoformat() if record.scanned_at else None


# a compliance row's key, not in its document; and the one field of the document that differs
# between most devices (each scanned at its own instant)
_KEY_FIELDS = ("device_id", "baseline")
_SCAN_FIELD = "scanned_at"
COMPLIANCE_BATCH = 5000  # records compared and written per round: bounded memory at any fleet


def _write_compliance(
    conn: Connection,
    records: Sequence[BaselineCompliance],
    tenants: Mapping[str, str],
    revision: str,
    *,
    now: datetime,
    replanned: Collection[str] | None,
) -> int:
    """Compare `records` with the stored rows and write those that changed, a batch of about
    `COMPLIANCE_BATCH` records (whole devices) at a time, so a million-device pass never holds
    the fleet's documents at once; then remove the rows of devices that have no record (a
    baseline no longer applies, the device retired). Answers the rows written or removed."""
    written = 0
    recorded: set[str] = set()
    encoder = _Encoder(compliance_store.encoding(conn))
    having = _few_devices_with_rows(conn, len(records)) if replanned is None else None
    for batch in _device_batches(records):
        devices = {record.device_id for record in batch}
        recorded |= devices
        asked = devices if having is None else devices & having
        written += _write_batch(conn, batch, asked, tenants, revision, encoder, now=now)
    if replanned is not None:
        left = set(replanned) - recorded
    elif having is not None:
        left = having - recorded
    else:  # the stored devices the pass recorded nothing for, read now (not the fleet's ids)
        left = compliance_store.devices_with_rows(conn, besides=recorded)
    if left:
        gone = list(compliance_store.stored(conn, devices=left))
        compliance_store.replace(conn, remove=gone, rows=[])
        written += len(gone)
    if written >= compliance_store.STATISTICS_AFTER:
        compliance_store.refresh_statistics(conn)
    return written


def _few_devices_with_rows(conn: Connection, records: int) -> set[str] | None:
    """For a full pass of `records` compliance records: the devices that have rows when the
    table holds fewer rows than half of that (a first pass, a fleet that grew), so that a batch
    asks only for those (a first pass asks nothing, and no batch scans a table that grew faster
    than its statistics on PostgreSQL); None when it holds more, and each batch asks for its
    devices, as it would for nearly all of them anyway, without the set of every device id
    (a million strings at a resync's peak, `bench/million.py`)."""
    if compliance_store.row_count(conn) * 2 >= records:
        return None
    return compliance_store.devices_with_rows(conn)


def _device_batches(
    records: Sequence[BaselineCompliance],
) -> Iterable[list[BaselineCompliance]]:
    """`records` in batches of about `COMPLIANCE_BATCH`, never splitting a device's records
    (they are consecutive in a plan): a batch compares every stored row of its devices."""
    batch: list[BaselineCompliance] = []
    for _device_id, group in itertools.groupby(records, key=lambda r: r.device_id):
        batch.extend(group)
        if len(batch) >= COMPLIANCE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(
    conn: Connection,
    batch: list[BaselineCompliance],
    devices: set[str],
    tenants: Mapping[str, str],
    revision: str,
    encoder: _Encoder,
    *,
    now: datetime,
) -> int:
    stored = compliance_store.stored(conn, devices=devices) if devices else {}
    changed = []
    rewritten: list[tuple[str, str]] = []  # stored rows about to be replaced
    for record in batch:
        text = encoder.text(record)
        key = (record.device_id, record.baseline)
        before = stored.pop(key, None)
        if before is not None and before[0] == record.state.value and _same(before[1], text):
            continue
        if before is not None:
            rewritten.append(key)
        changed.append(
            {
                "device_id": record.device_id,
                "baseline": record.baseline,
                "tenant": tenants[record.device_id],
                "state": record.state.value,
                "revision": revision,
                "evaluated_at": now,
                "patches": text,
            }
        )
    # rows of baselines that no longer apply to a device, and rows about to be rewritten
    compliance_store.replace(conn, remove=[*stored, *rewritten], rows=changed)
    return len(changed) + len(stored)


def _same(stored: str, text: str) -> bool:
    """Whether a stored document (JSON text) is the one encoded as `text`: by text, and when
    the texts differ (a row another writer wrote) by value; undecodable text differs."""
    if stored == text:
        return True
    try:
        return bool(json.loads(stored) == json.loads(text))
    except ValueError:
        return False


class _Encoder:
    """Compliance records → their documents' stored text (`compliance_store.encoding`),
    without encoding each document whole.

    Records equal but for device, baseline and scan instant (devices with the same findings
    under the same policy set) share one template: the text of their document around
    `scannedAt`, encoded once per pass; a record's text is its template with its own instant
    put in, as encoded alone (a string or null is encoded the same inside a document). At
    most `_ENCODINGS` templates are kept; past that each document is encoded anew."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        self._encode = encode
        self._templates: dict[tuple[Any, ...], tuple[str, str] | None] = {}
        self._instants: dict[datetime | None, str] = {}

    def text(self, record: BaselineCompliance) -> str:
        key = _TEMPLATE_OF(record)
        template = self._templates.get(key, _UNKNOWN)  # one lookup: the key's hash is not kept
        if template is _UNKNOWN:
            template = self._template(record)
            if len(self._templates) < _ENCODINGS:
                self._templates[key] = template
        if template is None:
            return self._encode(compliance_document(record))
        head, tail = template
        return head + self._instant(record) + tail

    def _template(self, record: BaselineCompliance) -> tuple[str, str] | None:
        """The document's text before and after its `scannedAt` value; None if a marker put
        there is not found exactly once in the text (a patch id spelled like it)."""
        document = compliance_document(record)
        document["scannedAt"] = _MARK
        text, mark = self._encode(document), self._encode(_MARK)
        if text.count(mark) != 1:
            return None
        head, _, tail = text.partition(mark)
        return head, tail

    def _instant(self, record: BaselineCompliance) -> str:
        """The record's `scannedAt` value as encoded alone, once per distinct instant."""
        found = self._instants.get(record.scanned_at)
        if found is None:
            found = self._encode(_scanned_at(record))
            if len(self._instants) < _ENCODINGS:
                self._instants[record.scanned_at] = found
        return found


# what a template stands for: every field of a record but the device, baseline and instant
_TEMPLATE_OF = operator.attrgetter(
    *(
        f.name
        for f in dataclasses.fields(BaselineCompliance)
        if f.name not in (*_KEY_FIELDS, _SCAN_FIELD)
    )
)
_MARK = "patchctl:scannedAt"  # where a template's instant goes
_UNKNOWN = ("", "")  # a template not made yet (by identity)
_ENCODINGS = 65_536


def _raise_alerts(
    conn: Connection,
    alerts: Sequence[AlertSpec],
    tenants: Mapping[str, str],
    *,
    now: datetime,
) -> int:
    """Insert the alerts whose key was never raised (`alert_store.add_alerts`); the store
    skips a key raised before, so a repeated pass raises nothing. A plan holds the alerts of
    every job of the ledger and every device, and sending them all again made each pass cost
    the whole ledger (1.3 s a quiet pass over 2,000 devices with a month of installs behind
    them): the reconciler sends those its planner did not give in the plan before."""
    first: dict[str, AlertSpec] = {}
    for alert in alerts:  # a key twice in one plan: the first alert counts, as in the store
        first.setdefault(alert.key, alert)
    rows = [_new_alert(alert, tenants) for alert in first.values()]
    return alert_store.add_alerts(conn, rows, now=now)


def _new_alert(alert: AlertSpec, tenants: Mapping[str, str]) -> alert_store.NewAlert:
    details = {k: v for k, v in (("job", alert.job_id), ("patch", alert.patch_id)) if v}
    details.update(alert.details)
    tenant = alert.tenant
    if tenant is None and alert.device_id:
        tenant = tenants.get(alert.device_id)
    return alert_store.NewAlert(
        kind=alert.type.value,
        severity=alert.severity.value,
        message=alert.message,
        tenant=tenant,
        device_id=alert.device_id,
        details=details,
        dedupe_key=alert.key,
    )


def _resolve_cleared(conn: Connection, plan: Plan, *, now: datetime) -> None:
    """Alerts follow their conditions (raised → resolved): an open condition alert whose key
    the plan no longer holds is resolved at `now`; a resolved one whose condition holds again
    is open again. The plan covers the whole fleet, so absence means the condition cleared."""
    kinds = [t.value for t in CONDITION_TYPES]
    open_keys = alert_store.open_alert_keys(conn, kinds=kinds)
    cleared = [alert_id for key, alert_id in open_keys.items() if key not in plan.holding]
    if cleared:
        alert_store.resolve_alerts(conn, cleared, now=now)
    again = [key for key in plan.holding if key not in open_keys]
    if again:
        alert_store.reopen_alerts(conn, again)


def _audit_issued(
    conn: Connection,
    issued: Iterable[JobSpec],
    tenants: Mapping[str, str],
    revision: str | None,
    *,
    now: datetime,
) -> None:
    """One audit event per tenant and job kind: which patches went to how many devices, and why."""
    grouped: dict[tuple[str, JobKind], list[JobSpec]] = defaultdict(list)
    for job in issued:
        grouped[(tenants[job.device_id], job.kind)].append(job)
    for (tenant, kind), group in sorted(grouped.items()):
        patches = sorted({p for job in group for p in job.patch_ids})
        audit_store.add_audit_event(
            conn,
            audit_store.NewAuditEvent(
                actor="controller",
                action=f"{kind.value.capitalize()}JobsIssued",
                tenant=tenant,
                revision=revision,
                details={
                    "jobs": len(group),
                    "devices": len({job.device_id for job in group}),
                    "patches": patches,
                    "windows": sorted({job.window for job in group if job.window}),
                },
            ),
            now=now,
        )
