"""Day-2 operations (issue 16 item 4): retire a device, rotate its token, cancel or retry a job,
acknowledge or resolve an alert, revoke a token: each one transaction that changes the object and
appends an `audit_events` row naming who did it.

Every function takes the caller's tenant `scope` (an admin token's tenant path; None: the local
operator, who holds the database and sees everything) and raises `NotFound` for an object
outside it exactly as for one that does not exist, so an id of another tenant is never confirmed.
`Refused` is a request the object's state does not allow (cancel a finished job), with the
reason for the operator. The HTTP layer (`controller.server.admin_api`) and the local CLI
(`controller.cli.operations`) share these functions, so both behave alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from controller import errors
from controller.core.jobs import ENDINGS, STARTED_STATES, EndReason, evaluate_ending
from controller.core.observed import JobKind, JobState
from controller.store import audit, changes, jobs, schema, tokens
from controller.store.scopes import in_scope

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.engine import Connection

# What an operator's retry of a job may start from: the agent failed it, or the controller
# ended it (timed out, not picked up).
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.EXPIRED})
# Jobs a retired device drops: everything not finished (the agent of a retired device is gone).
UNFINISHED_STATES = ENDINGS[EndReason.DEVICE_RETIRED].from_states


class NotFound(errors.NeedsHumanError, LookupError):  # noqa: N818 - the HTTP meaning, 404
    """No such object in the caller's scope."""


class Refused(errors.NeedsHumanError, ValueError):  # noqa: N818 - the HTTP meaning, 409
    """The object's state does not allow the operation; the message says why."""


@dataclass(frozen=True, slots=True)
class Operator:
    """Who asks: the audit trail's actor and the tenant scope they may touch (None: all)."""

    actor: str
    scope: str | None
    reason: str = ""  # the operator's why, kept in the audit event

    @classmethod
    def of(cls, principal: tokens.Principal, *, reason: str = "") -> Operator:
        return cls(actor=principal.actor, scope=principal.tenant, reason=reason)


@dataclass(frozen=True, slots=True)
class Retired:
    device_id: str
    name: str
    tenant: str
    cancelled_jobs: tuple[str, ...]
    revoked_hashes: tuple[str, ...]  # the device token's, for the server's auth cache


@dataclass(frozen=True, slots=True)
class Rotated:
    device_id: str
    name: str
    token: tokens.IssuedToken
    revoked_hashes: tuple[str, ...]


def _scoped(column: sa.ColumnElement[str], scope: str | None) -> sa.ColumnElement[bool]:
    return sa.true() if scope is None else in_scope(column, scope)


def _audit(
    conn: Connection,
    who: Operator,
    *,
    action: str,
    object_key: str,
    tenant: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    audit.add_audit_event(
        conn,
        audit.NewAuditEvent(
            actor=who.actor,
            action=action,
            object_key=object_key,
            tenant=tenant,
            details=details | ({"reason": who.reason} if who.reason else {}),
        ),
        now=now,
    )


def find_device(conn: Connection, ref: str, *, scope: str | None) -> dict[str, Any]:
    """The device of the scope with id `ref`, else the one named `ref` (retired ones included).
    NotFound when none; Refused when the name is enrolled in several tenants of the scope."""
    d = schema.devices.c
    columns = (d.id, d.name, d.tenant, d.retired_at)
    row = (
        conn.execute(sa.select(*columns).where(d.id == ref, _scoped(d.tenant, scope)))
        .mappings()
        .first()
    )
    if row is not None:
        return dict(row)
    rows = (
        conn.execute(
            sa.select(*columns)
            .where(d.name == ref.strip().lower(), _scoped(d.tenant, scope))
            .order_by(d.tenant)
        )
        .mappings()
        .all()
    )
    if not rows:
        raise NotFound(f"no device {ref!r} in scope {scope or '(all tenants)'!r}")
    if len(rows) > 1:
        tenants = ", ".join(str(r["tenant"]) for r in rows)
        raise Refused(f"device name {ref!r} is enrolled in tenants {tenants}: give the device id")
    return dict(rows[0])


def retire_device(conn: Connection, ref: str, *, who: Operator, now: datetime) -> Retired:
    """Retire a device: its unfinished jobs end `cancelled` (`device-retired`), its device token
    is revoked, its compliance rows go (it is no longer planned); jobs, alerts, scans and the
    audit trail stay. Refused when it is retired already."""
    device = find_device(conn, ref, scope=who.scope)
    if device["retired_at"] is not None:
        raise Refused(f"device {device['name']!r} is retired already")
    j = schema.jobs.c
    unfinished = list(
        conn.execute(
            sa.select(j.id)
            .where(j.device_id == device["id"], j.state.in_([s.value for s in UNFINISHED_STATES]))
            .order_by(j.id)
        ).scalars()
    )
    jobs.end_jobs(conn, unfinished, reason=EndReason.DEVICE_RETIRED, now=now)
    revoked = tokens.revoke_device_tokens(conn, device["id"])
    conn.execute(schema.compliance.delete().where(schema.compliance.c.device_id == device["id"]))
    d = schema.devices.c
    conn.execute(schema.devices.update().where(d.id == device["id"]).values(retired_at=now))
    changes.record_devices(conn, [device["id"]], now=now)
    _audit(
        conn,
        who,
        action="device.retired",
        object_key=f"device/{device['name']}",
        tenant=device["tenant"],
        details={
            "summary": f"retired device {device['name']}; {len(unfinished)} job(s) cancelled",
            "deviceId": device["id"],
            "cancelledJobs": unfinished,
        },
        now=now,
    )
    return Retired(
        device_id=device["id"],
        name=device["name"],
        tenant=device["tenant"],
        cancelled_jobs=tuple(unfinished),
        revoked_hashes=tuple(revoked),
    )


def rotate_device_token(conn: Connection, ref: str, *, who: Operator, now: datetime) -> Rotated:
    """Replace a device's token: the old one stops working at once (its row is deleted), the new
    secret is returned here only. Refused for a retired device (re-enrol it instead)."""
    device = find_device(conn, ref, scope=who.scope)
    if device["retired_at"] is not None:
        raise Refused(f"device {device['name']!r} is retired: re-enrol it instead")
    revoked = tokens.revoke_device_tokens(conn, device["id"])
    issued = tokens.create_token(
        conn,
        kind=tokens.TokenKind.DEVICE,
        tenant=device["tenant"],
        device_id=device["id"],
        description=f"device {device['name']}",
        now=now,
    )
    _audit(
        conn,
        who,
        action="device.token-rotated",
        object_key=f"device/{device['name']}",
        tenant=device["tenant"],
        details={
            "summary": f"rotated the token of device {device['name']}",
            "deviceId": device["id"],
            "tokenId": issued.id,
        },
        now=now,
    )
    return Rotated(device["id"], device["name"], issued, tuple(revoked))


def _job(conn: Connection, job_id: str, *, scope: str | None) -> dict[str, Any]:
    j = schema.jobs.c
    row = (
        conn.execute(
            sa.select(
                j.id,
                j.device_id,
                j.tenant,
                j.kind,
                j.patch_ids,
                j.payload,
                j.state,
                j.revision,
                j.window_key,
                j.deadline,
                j.run_timeout,
            )
            .where(j.id == job_id, _scoped(j.tenant, scope))
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no job {job_id!r} in scope {scope or '(all tenants)'!r}")
    return dict(row)


def cancel_job(conn: Connection, job_id: str, *, who: Operator, now: datetime) -> JobState:
    """Cancel a job the agent has not finished; returns the state it was in. A job the agent
    already took keeps running on the device (the controller never connects to devices): its
    later events are refused, and the rescan after an install shows what changed. The planner
    reads the cancelled install as attempted in its window occurrence (`core.plan._Ledger`), so
    it is not issued again before the next occurrence. Refused for a finished job."""
    job = _job(conn, job_id, scope=who.scope)
    state = JobState(job["state"])
    if evaluate_ending(state, EndReason.OPERATOR) is None:
        raise Refused(f"job {job_id} is {state.value} already: only unfinished jobs are cancelled")
    jobs.end_jobs(conn, [job_id], reason=EndReason.OPERATOR, only_from={state}, now=now)
    started = " (the agent had started it)" if state in STARTED_STATES else ""
    _audit(
        conn,
        who,
        action="job.cancelled",
        object_key=f"job/{job_id}",
        tenant=job["tenant"],
        details={
            "summary": f"cancelled {job['kind']} job {job_id} from {state.value}{started}",
            "jobId": job_id,
            "deviceId": job["device_id"],
            "fromState": state.value,
            "patches": list(job["patch_ids"] or []),
        },
        now=now,
    )
    return state


def retry_job(
    conn: Connection, job_id: str, *, who: Operator, now: datetime, pickup: timedelta
) -> str:
    """Issue a failed or expired job again, now: a new job (id `<kind>-retry-<n>-...`, derived
    from the original, so asking twice issues it once) with the same kind, patches, payload and
    window occurrence, a pickup deadline of `now + pickup` and the original's run
    timeout. Returns the new job's id. Refused for a job in any other state, for a device that is
    retired, and when the retry exists already."""
    job = _job(conn, job_id, scope=who.scope)
    state = JobState(job["state"])
    if state not in RETRYABLE_STATES:
        raise Refused(f"job {job_id} is {state.value}: only failed or expired jobs are retried")
    d = schema.devices.c
    retired = conn.execute(sa.select(d.retired_at).where(d.id == job["device_id"])).scalar()
    if retired is not None:
        raise Refused(f"job {job_id} belongs to a retired device")
    new_id = retry_id(job_id)
    inserted = jobs.insert_jobs(
        conn,
        [
            jobs.NewJob(
                id=new_id,
                device_id=job["device_id"],
                tenant=job["tenant"],
                kind=JobKind(job["kind"]),
                revision=job["revision"],
                patch_ids=tuple(job["patch_ids"] or ()),
                payload=dict(job["payload"] or {}) | {"retryOf": job_id},
                window_key=job["window_key"],
                deadline=now + pickup,
                run_timeout_s=job["run_timeout"],
            )
        ],
        now=now,
    )
    if not inserted:
        raise Refused(f"job {job_id} was retried already as {new_id}")
    _audit(
        conn,
        who,
        action="job.retried",
        object_key=f"job/{job_id}",
        tenant=job["tenant"],
        details={
            "summary": f"retried {job['kind']} job {job_id} ({state.value}) as {new_id}",
            "jobId": job_id,
            "retryJobId": new_id,
            "deviceId": job["device_id"],
            "patches": list(job["patch_ids"] or []),
        },
        now=now,
    )
    return new_id


def retry_id(job_id: str) -> str:
    """The id of the retry of `job_id`: `<kind>-retry-<n>-<hex>`, n counting retries of retries
    (job ids are at most 100 characters; the hex part is the original's)."""
    kind, _, rest = job_id.partition("-")
    if rest.startswith("retry-"):
        count, _, tail = rest.removeprefix("retry-").partition("-")
        if count.isdigit():
            return f"{kind}-retry-{int(count) + 1}-{tail}"
    return f"{kind}-retry-1-{rest}"


def _alert(conn: Connection, alert_id: int, *, who: Operator) -> dict[str, Any]:
    a = schema.alerts.c
    row = (
        conn.execute(
            sa.select(a.id, a.tenant, a.kind, a.acknowledged_at, a.resolved_at)
            .where(a.id == alert_id, sa.or_(a.tenant.is_(None), _scoped(a.tenant, who.scope)))
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no alert {alert_id} in scope {who.scope or '(all tenants)'!r}")
    if row["tenant"] is None and who.scope is not None:
        # visible to every tenant, so no single tenant's admin may close it for all of them
        raise Refused(
            f"alert {alert_id} concerns every tenant: acknowledge or resolve it on the "
            "controller host (patchctl alerts ack/resolve without --server)"
        )
    return dict(row)


def acknowledge_alert(conn: Connection, alert_id: int, *, who: Operator, now: datetime) -> None:
    """Fill `acknowledged_at/by`; the alert stays unresolved. Refused when already
    acknowledged or resolved."""
    alert = _alert(conn, alert_id, who=who)
    if alert["resolved_at"] is not None:
        raise Refused(f"alert {alert_id} is resolved already")
    if alert["acknowledged_at"] is not None:
        raise Refused(f"alert {alert_id} is acknowledged already")
    a = schema.alerts.c
    conn.execute(
        schema.alerts.update()
        .where(a.id == alert_id)
        .values(acknowledged_at=now, acknowledged_by=who.actor[:200])
    )
    _audit_alert(conn, who, alert, action="alert.acknowledged", verb="acknowledged", now=now)


def resolve_alert(conn: Connection, alert_id: int, *, who: Operator, now: datetime) -> None:
    """Set `resolved_at` (an acknowledgement is kept as it is). Refused when resolved already."""
    alert = _alert(conn, alert_id, who=who)
    if alert["resolved_at"] is not None:
        raise Refused(f"alert {alert_id} is resolved already")
    a = schema.alerts.c
    conn.execute(schema.alerts.update().where(a.id == alert_id).values(resolved_at=now))
    _audit_alert(conn, who, alert, action="alert.resolved", verb="resolved", now=now)


def _audit_alert(
    conn: Connection, who: Operator, alert: dict[str, Any], *, action: str, verb: str, now: datetime
) -> None:
    _audit(
        conn,
        who,
        action=action,
        object_key=f"alert/{alert['id']}",
        tenant=alert["tenant"],
        details={"summary": f"{verb} {alert['kind']} alert {alert['id']}", "alertId": alert["id"]},
        now=now,
    )


def revoke_token(conn: Connection, token_id: str, *, who: Operator, now: datetime) -> str:
    """Revoke a live token of the scope; returns its secret hash (for the server's auth cache).
    NotFound for a token outside the scope or unknown; Refused when revoked already."""
    t = schema.tokens.c
    row = (
        conn.execute(
            sa.select(t.id, t.kind, t.tenant, t.secret_hash, t.revoked_at).where(
                t.id == token_id, _scoped(t.tenant, who.scope)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no token {token_id!r} in scope {who.scope or '(all tenants)'!r}")
    if row["revoked_at"] is not None or not tokens.revoke_token(conn, token_id, now=now):
        raise Refused(f"token {token_id} is revoked already")
    _audit(
        conn,
        who,
        action="token.revoked",
        object_key=f"token/{token_id}",
        tenant=row["tenant"],
        details={"summary": f"revoked {row['kind']} token {token_id}", "tokenId": token_id},
        now=now,
    )
    return str(row["secret_hash"])
