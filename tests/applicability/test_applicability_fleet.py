"""Feed findings in the store: enrichment for the planner, supersedence, fleet re-evaluation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

import pytest
from applicabilityhelpers import CATALOGUE, SERVER_2019, debian

from controller.core.patches import PatchRecord, ProductBuild
from controller.core.plan import plan
from controller.feeds.common import FeedResult
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime import feeds, observe
from controller.store import catalogue, devices, reports
from controller.testing.fleets import desired

if TYPE_CHECKING:
    from controller.store import Store
    from controller.testing import SettableClock

FEBRUARY = PatchRecord(
    id="KB5034768",
    title="2024-02 Security Update",
    os=OsFamily.WINDOWS,
    classification=Classification.SECURITY,
    severity=Severity.CRITICAL,
    released=date(2024, 2, 13),
    supersedes=("KB5034127",),
    builds=(ProductBuild(SERVER_2019, "10.0.17763.5458"),),
)


def enrol(store: Store, name: str, os: tuple[str, str, str], clock: SettableClock) -> str:
    family, os_name, version = os
    with store.write() as conn:
        enrolment = devices.Enrolment(
            tenant="acme/retail",
            hostname=name,
            os_family=family,
            os_name=os_name,
            os_version=version,
            role="server",
            agent_version="1.0.0",
        )
        return devices.enrol(conn, enrolment, poll_interval=60, now=clock()).device_id


def report(store: Store, report: reports.Report, clock: SettableClock) -> None:
    with store.write() as conn:
        reports.write_reports(conn, [report], now=clock())


def scan(clock: SettableClock, *missing: dict[str, object]) -> reports.Scan:
    return reports.Scan(
        scanned_at=clock(),
        reboot_required=False,
        missing=tuple((str(m["id"]), {k: v for k, v in m.items() if k != "id"}) for m in missing),
    )


def feed_ids(store: Store, device_id: str) -> list[str]:
    with store.read() as conn:
        return [e["id"] for e in devices.device_patches(conn, device_id) if e["source"] == "feed"]


WINDOWS = ("windows", "Windows Server 2019", "1809")
DEBIAN = ("linux", "Debian GNU/Linux", "12")


def test_agent_scan_without_metadata_takes_the_catalogues(store: Store, clock) -> None:
    """A missing KB reported by id only (KB prefix or not) gets the catalogue's metadata; an
    agent-only patch keeps the agent's; a catalogue gap is filled by the agent."""
    gap = PatchRecord(id="KB5000001", os=OsFamily.WINDOWS)  # no severity, no classification
    catalogue.upsert_records(store, (*CATALOGUE, gap))
    device_id = enrol(store, "win-01", WINDOWS, clock)
    missing = (
        {"id": "5034127"},
        {"id": "KB5000001", "severity": "High", "classification": "security"},
        {"id": "VENDOR-1", "severity": "Critical", "classification": "security", "title": "T"},
    )
    report(store, reports.Report(device_id, scan=scan(clock, *missing)), clock)
    with store.read() as conn:
        observed = observe.observe(conn, now=clock())
    seen = {
        pid: (observed.patch(pid).severity, observed.patch(pid).classification)
        for pid in observed.scans[device_id].missing
    }
    expected = {
        "KB5034127": (Severity.CRITICAL, Classification.SECURITY),
        "KB5000001": (Severity.IMPORTANT, Classification.SECURITY),
        "VENDOR-1": (Severity.CRITICAL, Classification.SECURITY),
    }
    assert expected == seen
    assert (8.8, ("CVE-2024-20674",)) == (
        observed.patch("KB5034127").rating,
        observed.patch("KB5034127").cves,
    )


def test_superseded_patch_is_not_applicable_for_the_planner(store: Store, clock) -> None:
    """January's KB, superseded by February's imported later, is not-applicable; February's is
    missing."""
    catalogue.upsert_records(store, CATALOGUE)
    catalogue.upsert_records(store, (FEBRUARY,))  # a separate import: January's record unchanged
    device_id = enrol(store, "win-01", WINDOWS, clock)
    missing = ({"id": "KB5034127"}, {"id": "KB5034768"})
    report(store, reports.Report(device_id, scan=scan(clock, *missing)), clock)
    with store.read() as conn:
        observed = observe.observe(conn, now=clock())
    the_plan = plan(desired(), observed, now=clock())
    (found,) = [c for c in the_plan.compliance if c.device_id == device_id]
    assert (("KB5034768",), 1) == (found.missing, found.not_applicable)


def test_feed_import_reevaluates_stored_inventories(store: Store, clock) -> None:
    """A new advisory reaches devices that reported their inventory before it was imported."""
    catalogue.upsert_records(store, CATALOGUE)
    win = enrol(store, "win-01", WINDOWS, clock)
    deb = enrol(store, "deb-01", DEBIAN, clock)
    report(store, reports.Report(win, inventory=reports.Inventory("10.0.17763.5329", None)), clock)
    packages = [{"name": "openssl", "version": "3.0.15-1~deb12u1", "arch": "amd64"}]
    report(store, reports.Report(deb, inventory=reports.Inventory(None, None, packages)), clock)
    before = (feed_ids(store, win), feed_ids(store, deb))
    clock.advance(hours=1)
    newer_openssl = debian("openssl", "3.0.16-1~deb12u1")
    first = feeds.import_records(store, FeedResult(records=(FEBRUARY, newer_openssl)), now=clock())
    again = feeds.import_records(store, FeedResult(records=(FEBRUARY, newer_openssl)), now=clock())
    after = (feed_ids(store, win), feed_ids(store, deb))
    assert (([], []), (["KB5034768"], ["openssl=3.0.16-1~deb12u1"])) == (before, after)
    assert {"devices": 2, "covered": 2, "affected": 2, "findings": 2, "changed": 2} == (
        first.fleet.as_dict() if first.fleet else None
    )
    assert (None, 2) == (again.fleet, again.unchanged)


def test_reimport_of_a_withdrawn_advisory_clears_its_findings(store: Store, clock) -> None:
    """A withdrawn patch is never missing: the fleet pass drops it from the findings."""
    catalogue.upsert_records(store, CATALOGUE)
    win = enrol(store, "win-01", WINDOWS, clock)
    report(store, reports.Report(win, inventory=reports.Inventory("10.0.17763.5206", None)), clock)
    before = feed_ids(store, win)
    withdrawn = replace(CATALOGUE[-1], withdrawn=True)
    outcome = feeds.import_records(store, FeedResult(records=(withdrawn,)), now=clock())
    assert (["KB5034127"], [], 1) == (
        before,
        feed_ids(store, win),
        outcome.fleet.changed if outcome.fleet else None,
    )


@pytest.mark.parametrize("spelling", ["5034127", "kb5034127"])
def test_kb_spellings_map_to_the_catalogue_id(store: Store, clock, spelling: str) -> None:
    """Agents spelling a KB without its prefix or in lower case meet the feed's finding."""
    catalogue.upsert_records(store, CATALOGUE)
    device_id = enrol(store, "win-01", WINDOWS, clock)
    body = reports.Report(
        device_id,
        scan=scan(clock, {"id": spelling}),
        inventory=reports.Inventory("10.0.17763.5206", None),
    )
    report(store, body, clock)
    with store.read() as conn:
        observed = observe.observe(conn, now=clock())
    assert ("KB5034127",) == observed.scans[device_id].missing
