"""A known fleet in a real store, for the report tests (the clock is the constant `NOW`):

| tenant          | device | baseline                    | state         | notes                          |
|-----------------|--------|-----------------------------|---------------|--------------------------------|
| acme/retail     | web-01 | Baseline acme/linux-web     | non-compliant | USN-1 missing, USN-2 failed    |
| acme/retail     | web-02 | Baseline acme/linux-web     | compliant     | 5 installed                    |
| acme/logistics  | win-01 | Baseline acme/windows-base  | non-compliant | KB1 missing, KB2 needs reboot  |
| acme/logistics  | win-02 | Baseline acme/windows-base  | unknown       | never scanned                  |
| other           | db-01  | Baseline other/linux        | compliant     |                                |
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.core.compliance import BaselineCompliance, ComplianceState
from controller.runtime.apply import compliance_document
from controller.store import Store, schema

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
REVISION = "main@sha1:" + "a" * 40
FAILURE_REASON = "dpkg: error | <b>exit 100</b>"
TENANTS = ("acme", "acme/retail", "acme/logistics", "other")
DEVICES = {  # id: (tenant, name, os, reboot_required, scanned)
    "d-web-01": ("acme/retail", "web-01", "linux", False, NOW - timedelta(hours=3)),
    "d-web-02": ("acme/retail", "web-02", "linux", False, NOW - timedelta(hours=2)),
    "d-win-01": ("acme/logistics", "win-01", "windows", True, NOW - timedelta(hours=1)),
    "d-win-02": ("acme/logistics", "win-02", "windows", None, None),
    "d-db-01": ("other", "db-01", "linux", False, NOW - timedelta(hours=5)),
}
LINUX = "Baseline acme/linux-web"
WINDOWS = "Baseline acme/windows-base"
OTHER = "Baseline other/linux"


def _compliance(
    device_id: str,
    baseline: str,
    state: ComplianceState,
    **patches: Any,
) -> BaselineCompliance:
    scanned = DEVICES[device_id][4]
    return BaselineCompliance(device_id, baseline, state, scanned, **patches)


RECORDS = (
    _compliance(
        "d-web-01",
        LINUX,
        ComplianceState.NON_COMPLIANT,
        missing=("USN-1",),
        failed=("USN-2",),
        installed=3,
    ),
    _compliance("d-web-02", LINUX, ComplianceState.COMPLIANT, installed=5),
    _compliance(
        "d-win-01",
        WINDOWS,
        ComplianceState.NON_COMPLIANT,
        missing=("KB1",),
        pending_reboot=("KB2",),
        installed=7,
    ),
    _compliance("d-win-02", WINDOWS, ComplianceState.UNKNOWN),
    _compliance("d-db-01", OTHER, ComplianceState.COMPLIANT, installed=2),
)


def _job(
    job_id: str, device_id: str, finished: datetime, results: dict[str, Any], state: str
) -> dict[str, Any]:
    return {
        "id": job_id,
        "device_id": device_id,
        "tenant": DEVICES[device_id][0],
        "kind": "install",
        "patch_ids": sorted(results),
        "payload": {},
        "state": state,
        "revision": REVISION,
        "window_key": None,
        "deadline": None,
        "created_at": finished - timedelta(hours=1),
        "updated_at": finished,
        "delivered_at": finished - timedelta(minutes=50),
        "deliveries": 1,
        "finished_at": finished,
        "reboot_required": None,
        "results": results,
        "output": None,
    }


def build_fleet(store: Store) -> None:
    """Write the fleet of the module docstring into `store`."""
    with store.write() as conn:
        conn.execute(
            schema.tenants.insert(),
            [
                {
                    "path": t,
                    "parent": t.split("/")[0] if "/" in t else None,
                    "display_name": t,
                    "created_at": NOW - timedelta(days=100),
                }
                for t in TENANTS
            ],
        )
        conn.execute(
            schema.devices.insert(),
            [
                {
                    "id": device_id,
                    "tenant": tenant,
                    "name": name,
                    "hostname": name,
                    "os_family": os_family,
                    "os_name": "Ubuntu" if os_family == "linux" else "Windows Server 2022",
                    "os_version": "22.04" if os_family == "linux" else "10.0.20348",
                    "role": "server",
                    "labels": {},
                    "facts": {},
                    "agent_version": "1.0.0",
                    "poll_interval": 60,
                    "enrolled_at": NOW - timedelta(days=60),
                    "last_seen": NOW - timedelta(minutes=1),
                    "last_scan_at": scanned,
                    "reboot_required": reboot,
                }
                for device_id, (tenant, name, os_family, reboot, scanned) in DEVICES.items()
            ],
        )
        conn.execute(
            schema.compliance.insert(),
            [
                {
                    "device_id": record.device_id,
                    "baseline": record.baseline,
                    "tenant": DEVICES[record.device_id][0],
                    "state": record.state.value,
                    "revision": REVISION,
                    "evaluated_at": NOW - timedelta(minutes=10),
                    "patches": compliance_document(record),
                }
                for record in RECORDS
            ],
        )
        conn.execute(
            schema.patches.insert(),
            [
                {
                    "id": patch_id,
                    "os": "linux",
                    "severity": severity,
                    "classification": "security",
                    "released": None,
                    "withdrawn": False,
                    "digest": patch_id,
                    "record": {"id": patch_id},
                    "updated_at": NOW - timedelta(days=3),
                }
                for patch_id, severity in (
                    ("USN-1", "critical"),
                    ("USN-2", "important"),
                    ("KB1", "unspecified"),
                )
            ],
        )
        conn.execute(
            schema.patch_states.insert(),
            [
                {
                    "device_id": "d-win-01",
                    "source": "agent",
                    "observed_at": NOW - timedelta(hours=1),
                    "patches": [
                        {"id": "KB1", "state": "missing", "details": {"severity": "Moderate"}},
                        {"id": "KB2", "state": "installed"},
                    ],
                }
            ],
        )
        conn.execute(
            schema.jobs.insert(),
            [
                _job(
                    "j-old",
                    "d-web-01",
                    NOW - timedelta(days=40),
                    {"USN-2": {"result": "failed", "reason": "an old reason"}},
                    "failed",
                ),
                _job(
                    "j-web-01",
                    "d-web-01",
                    NOW - timedelta(days=2),
                    {
                        "USN-2": {"result": "failed", "reason": FAILURE_REASON},
                        "USN-3": {"result": "installed"},
                    },
                    "failed",
                ),
                _job(
                    "j-win-01",
                    "d-win-01",
                    NOW - timedelta(hours=2),
                    {"KB2": {"result": "installed"}},
                    "succeeded",
                ),
                _job(
                    "j-db-01",
                    "d-db-01",
                    NOW - timedelta(days=1),
                    {"DSA-1": {"result": "installed"}},
                    "succeeded",
                ),
            ],
        )
        conn.execute(
            schema.status.insert(),
            [
                {
                    "key": "trend:acme",
                    "value": {"points": {"2026-12-05": 40.0, "2026-12-06": 45.5}},
                    "updated_at": NOW - timedelta(days=1),
                },
                {
                    "key": "source",
                    "value": {"lastAppliedRevision": REVISION},
                    "updated_at": NOW - timedelta(minutes=10),
                },
            ],
        )
