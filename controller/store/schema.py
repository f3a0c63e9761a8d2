"""The tables of the state store, as SQLAlchemy Core `Table` objects.

Why Core and not the ORM: the store's callers want values, not live objects. The planner takes
frozen snapshots, the HTTP layer answers with JSON, and the hot path (agent reports) is a few
bulk statements per batch of reports, where the ORM's identity map and unit of work would only
add per-row cost. Core statements stay explicit about the SQL they run, portable between SQLite
and PostgreSQL, and checked by mypy through `sqlalchemy.sql` types.

Every change to these tables ships as an Alembic migration in `controller/store/migrations/`;
a test compares this metadata with the migrated schema so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on both engines (SQLite keeps no offset, so it is stored as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC times only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self,
        value: datetime | None,
        dialect: sa.Dialect,  # noqa: ARG002 - the TypeDecorator signature
    ) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # as read from a UTC session: as it is
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON on SQLite (text), JSONB on PostgreSQL."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(64), primary_key=True)


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UtcDateTime(), nullable=False)


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("path", sa.String(127), primary_key=True),
    sa.Column("parent", sa.String(63), nullable=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    _created(),
)

devices = sa.Table(
    "devices",
    metadata,
    _id(),
    sa.Column("tenant", sa.String(127), sa.ForeignKey("tenants.path"), nullable=False),
    sa.Column("name", sa.String(253), nullable=False),
    sa.Column("hostname", sa.String(253), nullable=False),
    sa.Column("os_family", sa.String(16), nullable=False),
    sa.Column("os_name", sa.String(200), nullable=False),
    sa.Column("os_version", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("labels", json_type(), nullable=False),
    sa.Column("facts", json_type(), nullable=False),
    sa.Column("agent_version", sa.String(64), nullable=False),
    sa.Column("poll_interval", sa.Integer(), nullable=False),
    sa.Column("enrolled_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("last_scan_at", UtcDateTime(), nullable=True),  # the agent's `scannedAt`
    # when the server received that scan: freshness is judged by it (`core.clocks`)
    sa.Column("last_scan_received_at", UtcDateTime(), nullable=True),
    sa.Column("reboot_required", sa.Boolean(), nullable=True),  # the scan's OS signal
    # the running kernel is older than the newest installed one (`store.findings`): an OS
    # reboot signal too; a device is pending reboot when either is set
    sa.Column("kernel_reboot", sa.Boolean(), nullable=False, server_default=sa.false()),
    # the agent's machine identity (/etc/machine-id, MachineGuid); None until one reports it
    sa.Column("machine_id", sa.String(64), nullable=True),
    # What the planner reads of the last stored agent scan and inventory, as digests, so the
    # report writer tells a changed input from a repeated one without reading the documents
    # (`controller.store.reports.compare_digests`: "quick:planning" pairs); None: nothing
    # recorded yet (the next one counts as changed).
    sa.Column("scan_digest", sa.String(64), nullable=True),
    sa.Column("inventory_digest", sa.String(64), nullable=True),
    # True from an enrolment (or re-enrolment) until the agent's first report
    sa.Column("awaiting_report", sa.Boolean(), nullable=False, server_default=sa.false()),
    # set when an operator retires the device: it leaves planning, compliance and listings, its
    # history stays; re-enrolling the name clears it (docs/operations.md)
    sa.Column("retired_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("tenant", "name"),
    sa.Index(None, "last_seen"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    _id(),
    sa.Column("kind", sa.String(16), nullable=False),  # enrollment | read | admin | device
    sa.Column("tenant", sa.String(127), sa.ForeignKey("tenants.path"), nullable=False),
    sa.Column(
        "device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.String(200), nullable=False, server_default=""),
    _created(),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    # enrolment tokens: how many enrolments it allows (None: no limit) and has allowed
    sa.Column("max_uses", sa.Integer(), nullable=True),
    sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
    sa.Index(None, "device_id"),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scanned_at", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("reboot_required", sa.Boolean(), nullable=False),
    sa.Column("missing_count", sa.Integer(), nullable=False),
    sa.Column("installed_count", sa.Integer(), nullable=False),
    sa.UniqueConstraint("device_id", "scanned_at"),
)

# The current state of every patch on a device, one JSON document per (device, source):
# {"missing": [{"id", "title"?, "classification"?, "severity"?, "kb"?, "cves"?, "sizeBytes"?}],
#  "installed": [{"id", "installedAt"?}]} (the agent's metadata as it reported it). `agent`
# documents are replaced whole by every fresh scan, `feed` documents by server-side
# applicability. One row per device instead of one per patch keeps a report to a single row
# write (no per-patch index maintenance) and lets the planner load a fleet with one JSON decode
# per device (`devices.load_patch_states`, `reports.patch_entries`).
patch_states = sa.Table(
    "patch_states",
    metadata,
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("source", sa.String(8), primary_key=True),  # agent | feed
    sa.Column("observed_at", UtcDateTime(), nullable=False),  # scannedAt, or the evaluation time
    sa.Column("patches", json_type(), nullable=False),
)

inventories = sa.Table(
    "inventories",
    metadata,
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("reported_at", UtcDateTime(), nullable=False),
    sa.Column("os_build", sa.String(100), nullable=True),
    sa.Column("kernel", sa.String(200), nullable=True),
    sa.Column("package_count", sa.Integer(), nullable=False),
    sa.Column("packages", json_type(), nullable=False),
    # The enabled module streams (`["php:7.4"]`); NULL when the agent did not report them.
    sa.Column("module_streams", json_type(), nullable=True),
    # Windows: `{productName, installationType, editionId, displayVersion, architecture,
    # hotpatchEnrolled}` as the agent reported them; NULL when it did not.
    sa.Column("windows", json_type(), nullable=True),
)

patches = sa.Table(
    "patches",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("os", sa.String(16), nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("classification", sa.String(32), nullable=False),
    sa.Column("released", sa.Date(), nullable=True),
    sa.Column("withdrawn", sa.Boolean(), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("record", json_type(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(None, "os"),
    sa.Index(None, "severity"),
    sa.Index(None, "classification"),
    sa.Index(None, "released"),
    sa.Index(None, "withdrawn"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column(
        "device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("tenant", sa.String(127), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # scan | install | script
    sa.Column("patch_ids", json_type(), nullable=False),
    sa.Column("payload", json_type(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("revision", sa.String(200), nullable=False),
    sa.Column("window_key", sa.String(200), nullable=True),
    sa.Column("deadline", UtcDateTime(), nullable=True),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("deliveries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("reboot_required", sa.Boolean(), nullable=True),
    sa.Column("results", json_type(), nullable=False),  # patch id -> {result, reason}
    sa.Column("output", sa.Text(), nullable=True),
    sa.Column("started_at", UtcDateTime(), nullable=True),  # the agent's first acked-or-later
    sa.Column("run_timeout", sa.Integer(), nullable=True),  # seconds from the start to the end
    sa.Column("end_reason", sa.String(64), nullable=True),  # why the controller ended it
    sa.Column("end_state", sa.String(16), nullable=True),  # the state it ended it from
    sa.Index(None, "device_id", "state"),
    sa.Index(None, "tenant", "created_at"),
    sa.Index(None, "state"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id", sa.String(100), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("dedupe_key", sa.String(80), nullable=False),  # seq:<n> or sha256:<hex>
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("patches", json_type(), nullable=False),
    sa.Column("reboot_required", sa.Boolean(), nullable=True),
    sa.Column("output", sa.Text(), nullable=True),
    sa.UniqueConstraint("job_id", "state", "dedupe_key"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(127), nullable=True),  # None: concerns every tenant
    sa.Column(
        "device_id", sa.String(64), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("details", json_type(), nullable=False),
    sa.Column("dedupe_key", sa.String(200), nullable=True, unique=True),
    _created(),
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    # An operator's acknowledgement: the alert stays unresolved, but is no longer "open".
    sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
    sa.Index(None, "tenant", "created_at"),
    sa.Index(None, "created_at", "id"),  # listings, newest first, of any scope (0012)
    # the open alerts of a kind: each pass resolves the condition alerts that cleared (0013)
    sa.Index(
        "ix_alerts_open_kind",
        "kind",
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    ),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("tenant", sa.String(127), nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object", sa.String(300), nullable=False, server_default=""),
    sa.Column("revision", sa.String(200), nullable=True),
    sa.Column("details", json_type(), nullable=False),
    sa.Index(None, "at"),
)

reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("revision", sa.String(200), nullable=True),
    sa.Column("result", sa.String(32), nullable=False),
    sa.Column("duration_ms", sa.Integer(), nullable=True),
    sa.Column("counts", json_type(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False, server_default=""),
    sa.Index(None, "started_at"),
)

compliance = sa.Table(
    "compliance",
    metadata,
    sa.Column(
        "device_id",
        sa.String(64),
        sa.ForeignKey("devices.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("baseline", sa.String(300), primary_key=True),  # tenant/name of the Baseline
    sa.Column("tenant", sa.String(127), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # compliant | non-compliant | unknown
    sa.Column("revision", sa.String(200), nullable=False),
    sa.Column("evaluated_at", UtcDateTime(), nullable=False),
    sa.Column("patches", json_type(), nullable=False),
    sa.Index(None, "tenant"),
)

status = sa.Table(
    "status",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", json_type(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# Leader leases (DESIGN §7): one row per lease name ("reconciler"). `epoch` is the fencing
# token: it grows by one every time the lease changes hands, and every write of the leader
# checks it (`controller.store.leases`). The unique (name, epoch) constraint makes `epoch` a
# key column for PostgreSQL's row locks, so the leader's `FOR KEY SHARE` check blocks a
# takeover (which changes the epoch) until the leader's transaction ends, but not the
# leader's own renewals (which do not).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),  # host:pid:nonce of the replica
    sa.Column("epoch", sa.Integer(), nullable=False),
    sa.Column("acquired_at", UtcDateTime(), nullable=False),
    sa.Column("renewed_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("wanted_at", UtcDateTime(), nullable=True),  # a follower asked for a pass
    sa.UniqueConstraint("name", "epoch"),
)

# What changed of the planner's inputs (issue 14): one row per changed device (`device_id`) or
# per catalogue change (`device_id` NULL), written by the store functions that change them, in
# the same transaction, from whichever process or replica writes. The reconciler reads the rows
# after the sequence number it last saw (`controller.store.changes`); old rows are pruned.
planner_changes = sa.Table(
    "planner_changes",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=True),  # NULL: the catalogue changed
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Index(None, "recorded_at"),
    sqlite_autoincrement=True,  # never reuse a number: a reader's high-water mark stays valid
)
