"""From a validated report body to the store's value (`controller.store.reports.Report`)."""

from __future__ import annotations

from controller.server import models
from controller.store import reports

_PATCH_LISTS = {"missing", "installed"}


def to_report(device_id: str, body: models.ReportRequest) -> reports.Report:
    """The store's value for a validated report body."""
    facts = None
    if body.facts is not None:
        f = body.facts
        facts = reports.Facts(
            os_family=f.os.family.value if f.os else None,
            os_name=f.os.name if f.os else None,
            os_version=f.os.version if f.os else None,
            role=f.role.value if f.role else None,
            labels=dict(f.labels) if f.labels is not None else None,
            agent_version=f.agent_version,
            machine_id=f.machine_id,
            document=f.model_dump_json(by_alias=True, exclude_unset=True),
        )
    scan = None
    if body.scan is not None:
        s = body.scan
        scan = reports.Scan(
            scanned_at=s.scanned_at,
            reboot_required=s.reboot_required,
            counts=(len(s.missing), len(s.installed)),
            document=s.model_dump_json(include=_PATCH_LISTS, by_alias=True, exclude_defaults=True),
            lists=(s.missing, s.installed),
        )
    inventory = None
    if body.inventory is not None:
        i = body.inventory
        inventory = reports.Inventory(
            os_build=i.os_build,
            kernel=i.kernel,
            packages=[p.model_dump(exclude_none=True) for p in i.packages],
            module_streams=i.module_streams,
            windows=(
                i.windows.model_dump(by_alias=True, exclude_none=True)
                if i.windows is not None
                else None
            ),
        )
    return reports.Report(device_id=device_id, facts=facts, scan=scan, inventory=inventory)
