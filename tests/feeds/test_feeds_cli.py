"""`patchctl feed import`: counts, and the fleet re-evaluated when the catalogue changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from click.testing import CliRunner

from controller.cli import main
from controller.store import devices, open_store, reports

if TYPE_CHECKING:
    from pathlib import Path

FEED = """\
- id: KB9000001
  title: 2099-01 Cumulative Update
  os: windows
  classification: security
  severity: Critical
  builds: [{product: Windows Server 2019, build: 10.0.17763.9001}]
"""


def windows_device_with_inventory(url: str) -> str:
    store = open_store(url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        with store.write() as conn:
            enrolment = devices.Enrolment(
                tenant="acme",
                hostname="win-01",
                os_family="windows",
                os_name="Windows Server 2019",
                os_version="1809",
                role="server",
                agent_version="1.0.0",
            )
            device_id = devices.enrol(conn, enrolment, poll_interval=60, now=now).device_id
            inventory = reports.Inventory("10.0.17763.5000", None)
            reports.write_reports(conn, [reports.Report(device_id, inventory=inventory)], now=now)
    finally:
        store.close()
    return device_id


def test_import_reevaluates_the_fleet_then_is_idempotent(tmp_path: Path) -> None:
    """The first import finds the KB missing on the stored inventory; the second changes nothing."""
    url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    windows_device_with_inventory(url)
    (tmp_path / "feed.yaml").write_text(FEED)
    args = ["feed", "import", str(tmp_path / "feed.yaml"), "--format", "native", "--db", url]
    first = CliRunner().invoke(main, [*args, "--json"])
    second = CliRunner().invoke(main, args)
    fleet = {"devices": 1, "covered": 1, "affected": 1, "findings": 1, "changed": 1}
    assert (0, 1, fleet) == (
        first.exit_code,
        json.loads(first.output)["new"],
        json.loads(first.output)["fleet"],
    )
    assert "fleet: catalogue unchanged, findings not recomputed" in second.output
