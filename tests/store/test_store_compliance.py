"""`store.compliance`: the rows apply compares and replaces, and the counts status reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.store import Store, devices
from controller.store import compliance as compliance_store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def enrol(store: Store, tenant: str, hostname: str) -> str:
    with store.write() as conn:
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant=tenant,
                hostname=hostname,
                os_family="linux",
                os_name="Debian",
                os_version="12",
                role="server",
                agent_version="1.0",
                labels={},
            ),
            poll_interval=60,
            now=NOW,
        )
    assert isinstance(enrolled, devices.Enrolled)
    return enrolled.device_id


def row(device_id: str, tenant: str, baseline: str, state: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "baseline": baseline,
        "tenant": tenant,
        "state": state,
        "revision": "main@sha1:a",
        "evaluated_at": NOW,
        "patches": {"missing": [] if state == "compliant" else ["USN-1-1"]},
    }


def test_replace_then_stored_reads_back_per_device(store: Store) -> None:
    """Rows replaced are read back for the devices asked (None: all); removed keys go."""
    web = enrol(store, "acme", "web-01")
    db = enrol(store, "acme/retail", "db-01")
    with store.write() as conn:
        compliance_store.replace(
            conn,
            remove=[],
            rows=[
                row(web, "acme", "acme/linux", "compliant"),
                row(web, "acme", "acme/kernel", "non-compliant"),
                row(db, "acme/retail", "acme/linux", "non-compliant"),
            ],
        )
        compliance_store.replace(
            conn,
            remove=[(web, "acme/kernel"), (db, "acme/linux")],
            rows=[row(db, "acme/retail", "acme/linux", "compliant")],
        )
    with store.read() as conn:
        only_db = compliance_store.stored(conn, devices=[db])
        every = compliance_store.stored(conn, devices=None)
        counted = compliance_store.counts(conn, scope="acme/retail")
    assert {(db, "acme/linux"): ("compliant", {"missing": []})} == only_db
    assert {(web, "acme/linux"), (db, "acme/linux")} == set(every)
    assert {("acme/retail", "acme/linux", "compliant"): 1} == counted


def test_stored_reads_more_devices_than_one_chunk(store: Store) -> None:
    """More ids than one IN list holds are read in chunks, none lost."""
    ids = [enrol(store, "acme", f"web-{n:03d}") for n in range(3)]
    asked = [*ids, *(f"d-missing-{n}" for n in range(1200))]
    with store.write() as conn:
        compliance_store.replace(
            conn, remove=[], rows=[row(i, "acme", "acme/linux", "compliant") for i in ids]
        )
    with store.read() as conn:
        assert set(ids) == {device for device, _ in compliance_store.stored(conn, devices=asked)}
