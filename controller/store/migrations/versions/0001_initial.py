"""The initial schema: tenants, devices, tokens, scans, patch states, inventories, the patch
catalogue, jobs and job events, alerts, audit events, reconcile runs, compliance and status.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types of controller.store.schema at this revision: a migration
# never imports the live schema, which moves on.
UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=300), server_default="", nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)
    op.create_table(
        "patches",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("os", sa.String(length=16), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("classification", sa.String(length=32), nullable=False),
        sa.Column("released", sa.Date(), nullable=True),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("record", JSON, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patches")),
    )
    op.create_index(op.f("ix_patches_classification"), "patches", ["classification"], unique=False)
    op.create_index(op.f("ix_patches_os"), "patches", ["os"], unique=False)
    op.create_index(op.f("ix_patches_released"), "patches", ["released"], unique=False)
    op.create_index(op.f("ix_patches_severity"), "patches", ["severity"], unique=False)
    op.create_index(op.f("ix_patches_withdrawn"), "patches", ["withdrawn"], unique=False)
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("revision", sa.String(length=200), nullable=True),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_runs")),
    )
    op.create_index(
        op.f("ix_reconcile_runs_started_at"), "reconcile_runs", ["started_at"], unique=False
    )
    op.create_table(
        "status",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_status")),
    )
    op.create_table(
        "tenants",
        sa.Column("path", sa.String(length=127), nullable=False),
        sa.Column("parent", sa.String(length=63), nullable=True),
        sa.Column("display_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_tenants")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("os_family", sa.String(length=16), nullable=False),
        sa.Column("os_name", sa.String(length=200), nullable=False),
        sa.Column("os_version", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("facts", JSON, nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("poll_interval", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", UTC_TIME, nullable=False),
        sa.Column("last_seen", UTC_TIME, nullable=False),
        sa.Column("last_scan_at", UTC_TIME, nullable=True),
        sa.Column("reboot_required", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.path"], name=op.f("fk_devices_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("tenant", "name", name=op.f("uq_devices_tenant_name")),
    )
    op.create_index(op.f("ix_devices_last_seen"), "devices", ["last_seen"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("resolved_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_alerts_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_alerts_dedupe_key")),
    )
    op.create_index(
        op.f("ix_alerts_tenant_created_at"), "alerts", ["tenant", "created_at"], unique=False
    )
    op.create_table(
        "compliance",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("baseline", sa.String(length=300), nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("evaluated_at", UTC_TIME, nullable=False),
        sa.Column("patches", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_compliance_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "baseline", name=op.f("pk_compliance")),
    )
    op.create_index(op.f("ix_compliance_tenant"), "compliance", ["tenant"], unique=False)
    op.create_table(
        "inventories",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("reported_at", UTC_TIME, nullable=False),
        sa.Column("os_build", sa.String(length=100), nullable=True),
        sa.Column("kernel", sa.String(length=200), nullable=True),
        sa.Column("package_count", sa.Integer(), nullable=False),
        sa.Column("packages", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_inventories_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_inventories")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("patch_ids", JSON, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("window_key", sa.String(length=200), nullable=True),
        sa.Column("deadline", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("delivered_at", UTC_TIME, nullable=True),
        sa.Column("deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("reboot_required", sa.Boolean(), nullable=True),
        sa.Column("results", JSON, nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_jobs_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_device_id_state"), "jobs", ["device_id", "state"], unique=False)
    op.create_index(op.f("ix_jobs_state"), "jobs", ["state"], unique=False)
    op.create_index(
        op.f("ix_jobs_tenant_created_at"), "jobs", ["tenant", "created_at"], unique=False
    )
    op.create_table(
        "patch_states",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("patches", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_patch_states_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "source", name=op.f("pk_patch_states")),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("scanned_at", UTC_TIME, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("reboot_required", sa.Boolean(), nullable=False),
        sa.Column("missing_count", sa.Integer(), nullable=False),
        sa.Column("installed_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_scans_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
        sa.UniqueConstraint("device_id", "scanned_at", name=op.f("uq_scans_device_id_scanned_at")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tenant", sa.String(length=127), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=True),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_tokens_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.path"], name=op.f("fk_tokens_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_tokens_secret_hash")),
    )
    op.create_index(op.f("ix_tokens_device_id"), "tokens", ["device_id"], unique=False)
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=80), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("patches", JSON, nullable=False),
        sa.Column("reboot_required", sa.Boolean(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
        sa.UniqueConstraint(
            "job_id", "state", "dedupe_key", name=op.f("uq_job_events_job_id_state_dedupe_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_index(op.f("ix_tokens_device_id"), table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("scans")
    op.drop_table("patch_states")
    op.drop_index(op.f("ix_jobs_tenant_created_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_state"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_device_id_state"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("inventories")
    op.drop_index(op.f("ix_compliance_tenant"), table_name="compliance")
    op.drop_table("compliance")
    op.drop_index(op.f("ix_alerts_tenant_created_at"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_devices_last_seen"), table_name="devices")
    op.drop_table("devices")
    op.drop_table("tenants")
    op.drop_table("status")
    op.drop_index(op.f("ix_reconcile_runs_started_at"), table_name="reconcile_runs")
    op.drop_table("reconcile_runs")
    op.drop_index(op.f("ix_patches_withdrawn"), table_name="patches")
    op.drop_index(op.f("ix_patches_severity"), table_name="patches")
    op.drop_index(op.f("ix_patches_released"), table_name="patches")
    op.drop_index(op.f("ix_patches_os"), table_name="patches")
    op.drop_index(op.f("ix_patches_classification"), table_name="patches")
    op.drop_table("patches")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
