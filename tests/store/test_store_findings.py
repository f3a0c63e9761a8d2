"""Feed findings: a device's missing patches computed from its package inventory against the
catalogue, stored as its `feed` patch-state document (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from controller.core.patches import FixedPackage, PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.store import Store, devices, findings, schema
from controller.store.devices import Enrolled, Enrolment
from controller.store.findings import CatalogueView, DeviceInventory
from controller.testing import SettableClock

DSA = PatchRecord(
    id="DSA-5800-1",
    os=OsFamily.LINUX,
    classification=Classification.SECURITY,
    severity=Severity.IMPORTANT,
    released=date(2026, 11, 1),
    packages=(FixedPackage("openssl", "3.0.15-1~deb12u1", "debian:12", source_name="openssl"),),
)
VIEW = CatalogueView.build("v1", [DSA])
DEBIAN = DeviceInventory(
    device_id="d1",
    os_family="linux",
    os_name="Debian GNU/Linux",
    os_version="12.11",
    os_build=None,
    kernel=None,
    packages=[{"name": "openssl", "version": "3.0.11-1~deb12u2", "arch": "amd64"}],
)


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        pytest.param(DEBIAN, ["DSA-5800-1"], id="older-package-misses-the-fix"),
        pytest.param(
            replace(DEBIAN, packages=[{"name": "openssl", "version": "3.0.15-1~deb12u1"}]),
            [],
            id="fixed-version-installed",
        ),
        pytest.param(replace(DEBIAN, os_version="11"), None, id="release-not-covered"),
        pytest.param(replace(DEBIAN, os_family=None), None, id="unknown-os-family"),
        pytest.param(
            replace(DEBIAN, packages=[{"name": "openssl"}, "garbage"]),
            [],
            id="malformed-entries-ignored",
        ),
    ],
)
def test_findings_follow_the_inventory_and_the_catalogue_s_coverage(
    inventory: DeviceInventory, expected: list[str] | None
) -> None:
    """A covered release gets its missing patches (maybe none); an uncovered one no verdict."""
    found = findings.evaluate(VIEW, inventory).findings
    assert expected == (None if found is None else [f.patch_id for f in found])


def test_the_document_has_the_shape_of_an_agent_scan() -> None:
    """`{"missing": [{id, package, installed, fixed}]}`, as the planner reads scans."""
    evaluation = findings.evaluate(VIEW, DEBIAN)
    assert evaluation.findings is not None
    assert {
        "missing": [
            {
                "id": "DSA-5800-1",
                "package": "openssl",
                "installed": "3.0.11-1~deb12u2",
                "fixed": "3.0.15-1~deb12u1",
            }
        ]
    } == findings.document(evaluation.findings)


def stored(store: Store) -> dict[str, Any]:
    s = schema.patch_states.c
    with store.read() as conn:
        rows = conn.execute(sa.select(s.device_id, s.patches).where(s.source == findings.FEED))
        return {row.device_id: row.patches for row in rows}


def test_stored_findings_are_replaced_and_removed_when_not_covered(
    store: Store, clock: SettableClock
) -> None:
    """Each evaluation replaces the device's `feed` document; an uncovered device loses it."""
    host = Enrolment(
        tenant="acme",
        hostname="deb-01",
        os_family="linux",
        os_name="Debian GNU/Linux",
        os_version="12.11",
        role="server",
        agent_version="1.0",
    )
    with store.write() as conn:
        enrolled = devices.enrol(conn, host, poll_interval=60, now=clock())
    assert isinstance(enrolled, Enrolled)
    device = replace(DEBIAN, device_id=enrolled.device_id)
    seen = []
    for inventory in (device, replace(device, os_version="11")):
        with store.write() as conn:
            findings.store_evaluations(conn, [findings.evaluate(VIEW, inventory)], now=clock())
        seen.append({k: [e["id"] for e in v["missing"]] for k, v in stored(store).items()})
    assert [{enrolled.device_id: ["DSA-5800-1"]}, {}] == seen
