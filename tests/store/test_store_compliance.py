"""`store.compliance`: the rows apply compares and replaces, and the counts status reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.store import Store, devices, open_store, schema
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
        "patches": json.dumps({"missing": [] if state == "compliant" else ["USN-1-1"]}),
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
    decoded = {key: (state, json.loads(text)) for key, (state, text) in only_db.items()}
    assert {(db, "acme/linux"): ("compliant", {"missing": []})} == decoded
    assert {(web, "acme/linux"), (db, "acme/linux")} == set(every)
    assert {("acme/retail", "acme/linux", "compliant"): 1} == counted


def test_replace_writes_the_times_the_column_type_reads_back(store: Store) -> None:
    """`evaluated_at`, bound without SQLAlchemy's per-row processing, reads back through the
    column type as the instant written (an aware time in another zone, microseconds kept)."""
    ids = [enrol(store, "acme", f"web-{n}") for n in range(3)]
    berlin = timezone(timedelta(hours=1))
    instants = [NOW, NOW.astimezone(berlin) + timedelta(microseconds=123), NOW]
    with store.write() as conn:
        compliance_store.replace(
            conn,
            remove=[],
            rows=[
                {**row(i, "acme", "acme/linux", "compliant"), "evaluated_at": at}
                for i, at in zip(ids, instants, strict=True)
            ],
        )
    with store.read() as conn:
        listed = compliance_store.list_compliance(conn, scope="acme")
    found = {r["device_id"]: r["evaluated_at"] for r in listed}
    assert dict(zip(ids, instants, strict=True)) == found
    assert all(at.tzinfo is UTC for at in found.values())


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


# documents of the shape apply writes, and what could trip an encoder: keys of one length in
# another order, non-ASCII and escaped characters, nesting, empty values
DOCUMENTS = {
    "compliance": {
        "scannedAt": "2026-11-30T11:00:00+00:00",
        "counts": {"missing": 2, "installed": 5, "installed-pending-reboot": 1},
        "missing": ["USN-1-1", "KB5044284"],
        "failed": [],
        "pendingReboot": ["LNX-0001"],
        "rejected": [],
    },
    "never scanned": {"scannedAt": None, "counts": {}, "missing": []},
    "text to escape": {"zz": 'quote " back \\ tab \t line \n', "é": ["ünïcode ✓", "\u0001"]},
    "same-length keys": {"bb": 1, "ab": 2, "b": [{"y": 0, "x": -3}], "a": True, "c": False},
    "empty": {},
}


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_stored_reads_back_the_text_encoding_made(store: Store, document: Any) -> None:
    """What `replace` wrote from `encoding`'s text is read back as that very text (PostgreSQL
    answers its own form, which `encoding` makes there), and decodes to the document."""
    web = enrol(store, "acme", "web-01")
    with store.write() as conn:
        text = compliance_store.encoding(conn)(document)
        compliance_store.replace(
            conn, remove=[], rows=[{**row(web, "acme", "acme/linux", "compliant"), "patches": text}]
        )
    with store.read() as conn:
        (state, found), *_ = compliance_store.stored(conn, devices=[web]).values()
    assert ("compliant", text, document) == (state, found, json.loads(found))


def test_sqlite_keeps_the_text_sqlalchemy_json_wrote(tmp_path: Path) -> None:
    """On SQLite, `encoding` makes the text SQLAlchemy's JSON column type stored (rows written
    before, and by other writers through the table, compare equal without decoding)."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    web = enrol(store, "acme", "web-01")
    document = DOCUMENTS["compliance"]
    with store.write() as conn:
        conn.execute(
            schema.compliance.insert(),
            [{**row(web, "acme", "acme/linux", "compliant"), "patches": document}],
        )
        raw = conn.execute(sa.select(sa.cast(schema.compliance.c.patches, sa.Text))).scalar()
        (_, found), *_ = compliance_store.stored(conn, devices=None).values()
        expected = compliance_store.encoding(conn)(document)
    store.close()
    assert (expected, expected) == (raw, found)
