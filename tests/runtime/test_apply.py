"""`runtime.apply`: compliance written in batches of whole devices, on both engines.

Real stores (the `store` fixture: SQLite, then PostgreSQL when configured); plans are written by
hand, as the planner would give them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.core.compliance import BaselineCompliance, ComplianceState
from controller.core.plan import Plan
from controller.runtime import apply
from controller.store import Store, devices, open_store, schema
from controller.store import compliance as compliance_store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BASELINES = ("Baseline acme/linux", "Baseline acme/kernel")


def enrol(store: Store, hostname: str) -> str:
    with store.write() as conn:
        enrolled = devices.enrol(
            conn,
            devices.Enrolment(
                tenant="acme",
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


def record(device_id: str, baseline: str, *missing: str) -> BaselineCompliance:
    state = ComplianceState.NON_COMPLIANT if missing else ComplianceState.COMPLIANT
    return BaselineCompliance(device_id, baseline, state, NOW, missing=missing)


def write(store: Store, records: list[BaselineCompliance], ids: list[str], **kw: object) -> int:
    plan = Plan(revision="main@sha1:a", now=NOW, compliance=tuple(records))
    with store.write() as conn:
        applied = apply.apply_plan(conn, plan, tenants=dict.fromkeys(ids, "acme"), now=NOW, **kw)  # type: ignore[arg-type]
    return applied.compliance_written


def stored(store: Store) -> dict[tuple[str, str], str]:
    with store.read() as conn:
        return {
            key: state for key, (state, _) in compliance_store.stored(conn, devices=None).items()
        }


@pytest.mark.parametrize("batch", [1, 2, 3, 5000], ids=lambda n: f"batch-{n}")
def test_a_full_pass_writes_changes_and_removes_rows_without_records(
    store: Store, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """Whatever the batch size: changed rows are written, unchanged ones left, and rows of
    baselines or devices without a record removed; a repeat writes nothing."""
    monkeypatch.setattr(apply, "COMPLIANCE_BATCH", batch)
    ids = [enrol(store, f"web-{n}") for n in range(4)]
    first = [record(i, b, "USN-1-1") for i in ids for b in BASELINES]
    assert 8 == write(store, first, ids)
    # web-0 now compliant for linux, web-1 no longer under kernel, web-3 not planned at all
    second = [
        record(ids[0], BASELINES[0]),
        record(ids[0], BASELINES[1], "USN-1-1"),
        record(ids[1], BASELINES[0], "USN-1-1"),
        *(record(ids[2], b, "USN-1-1") for b in BASELINES),
    ]
    written = write(store, second, ids[:3])
    again = write(store, second, ids[:3])
    expected = {(r.device_id, r.baseline): r.state.value for r in second}
    assert (1 + 1 + 2, 0, expected) == (written, again, stored(store))


@pytest.mark.parametrize("stored_before", [1, 4], ids=["few-rows", "a-row-per-device"])
def test_a_full_pass_asks_for_stored_rows_by_how_many_there_are(
    store: Store, monkeypatch: pytest.MonkeyPatch, stored_before: int
) -> None:
    """While the table holds rows for few of the devices a full pass records (a first pass, a
    grown fleet), the batches ask only for those devices; otherwise for every device, without
    a set of all the stored ids first. Either way the rows of a device the pass recorded
    nothing for go (web-3), and the others are those recorded."""
    ids = [enrol(store, f"web-{n}") for n in range(4)]
    write(
        store, [record(i, b, "USN-1-1") for i in ids[4 - stored_before :] for b in BASELINES], ids
    )
    asked: list[set[str]] = []
    reads = compliance_store.stored

    def stored_rows(conn: Any, *, devices: Any) -> Any:
        asked.append(set(devices or ()))
        return reads(conn, devices=devices)

    monkeypatch.setattr(compliance_store, "stored", stored_rows)
    recorded = [record(i, b) for i in ids[:3] for b in BASELINES]
    write(store, recorded, ids)
    expected_asked = set(ids[:3]) if stored_before == 4 else set()
    left = {ids[3]}
    assert (expected_asked, left) == (set().union(*asked[:-1]), asked[-1])
    assert {(r.device_id, r.baseline): "compliant" for r in recorded} == stored(store)


def test_an_incremental_pass_touches_only_replanned_devices(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `replanned`, rows of other devices stay, and a replanned device without records
    loses its rows."""
    monkeypatch.setattr(apply, "COMPLIANCE_BATCH", 1)
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    write(store, [record(i, BASELINES[0], "USN-1-1") for i in ids], ids)
    written = write(store, [record(ids[0], BASELINES[0])], ids, replanned={ids[0], ids[1]})
    expected = {(ids[0], BASELINES[0]): "compliant", (ids[2], BASELINES[0]): "non-compliant"}
    assert (2, expected) == (written, stored(store))


def rows(store: Store) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(device, baseline) → (state, revision, patches text) as stored."""
    c = schema.compliance.c
    with store.read() as conn:
        found = conn.execute(
            sa.select(c.device_id, c.baseline, c.state, c.revision, sa.cast(c.patches, sa.Text))
        )
        return {(d, b): (state, revision, text) for d, b, state, revision, text in found}


def test_a_row_another_writer_stored_is_compared_by_value(tmp_path: Path) -> None:
    """A stored document written as other text (not `encoding`'s) but equal is left alone;
    an unequal or undecodable one is rewritten. SQLite: it keeps text as written."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    records = [record(i, BASELINES[0], "USN-1-1") for i in ids]
    document = apply.compliance_document(records[0])
    texts = [
        json.dumps(document, separators=(",", ":"), sort_keys=True),  # equal, other text
        json.dumps({**document, "missing": ["USN-2-2"]}),  # unequal
        "{not json",
    ]
    with store.write() as conn:
        compliance_store.replace(
            conn,
            remove=[],
            rows=[
                {
                    "device_id": i,
                    "baseline": BASELINES[0],
                    "tenant": "acme",
                    "state": "non-compliant",
                    "revision": "old",
                    "evaluated_at": NOW,
                    "patches": text,
                }
                for i, text in zip(ids, texts, strict=True)
            ],
        )
    written = write(store, records, ids)
    found = rows(store)
    store.close()
    encoded = json.dumps(document)
    assert (2, texts[0], encoded, encoded) == (
        written,
        found[ids[0], BASELINES[0]][2],
        found[ids[1], BASELINES[0]][2],
        found[ids[2], BASELINES[0]][2],
    )


def test_a_repeated_pass_finds_every_row_by_its_text(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What apply wrote reads back as the very text it would write again (on PostgreSQL too,
    which keeps its own form): a repeat decodes no stored document and writes nothing."""
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    records = [
        record(ids[0], BASELINES[0], "USN-1-1", "KB5044284"),
        record(ids[0], BASELINES[1]),
        record(ids[1], BASELINES[0], "USN-1-1", "KB5044284"),  # the same document as ids[0]'s
        BaselineCompliance(ids[2], BASELINES[0], ComplianceState.UNKNOWN, None),
    ]
    write(store, records, ids)
    decoded: list[str] = []
    loads = json.loads
    monkeypatch.setattr(apply.json, "loads", lambda text: decoded.append(text) or loads(text))
    assert (0, []) == (write(store, records, ids), decoded)


@pytest.mark.parametrize(
    "encode",
    [json.dumps, compliance_store._jsonb_text],  # PostgreSQL's, without a server
    ids=["sqlite", "postgresql"],
)
def test_documents_from_templates_are_those_encoded_each_time(encode: Any) -> None:
    """The pass's encoder (`_Encoder`: templates of the text around the scan instant) answers,
    for varied records, the text of the record's own document encoded whole: equal records
    but for device and baseline share it, any other field gives another; a patch id spelled
    like the template's marker does not confuse it."""
    base = BaselineCompliance(
        "d-1",
        BASELINES[0],
        ComplianceState.NON_COMPLIANT,
        NOW,
        missing=("USN-1-1",),
        failed=("USN-2-2",),
        pending_reboot=("USN-3-3",),
        rejected=("USN-4-4",),
        installed=3,
        not_applicable=1,
    )
    variants = [
        base,
        dataclasses.replace(base, device_id="d-2"),
        dataclasses.replace(base, device_id="d-3", baseline=BASELINES[1]),
        dataclasses.replace(base, scanned_at=None),
        dataclasses.replace(base, scanned_at=NOW + timedelta(seconds=1)),
        dataclasses.replace(base, missing=()),
        dataclasses.replace(base, missing=("USN-1-1", "USN-5-5")),
        dataclasses.replace(base, failed=()),
        dataclasses.replace(base, pending_reboot=()),
        dataclasses.replace(base, rejected=("USN-6-6",)),
        dataclasses.replace(base, installed=4),
        dataclasses.replace(base, not_applicable=0),
        dataclasses.replace(base, state=ComplianceState.UNKNOWN, missing=(), installed=0),
        dataclasses.replace(base, missing=(apply._MARK,)),
        dataclasses.replace(base, missing=(apply._MARK,), scanned_at=None),
    ]
    encoder = apply._Encoder(encode)
    memoised = [encoder.text(r) for r in [*variants, *reversed(variants)]]
    direct = [encode(apply.compliance_document(r)) for r in [*variants, *reversed(variants)]]
    assert direct == memoised
    assert len(set(direct)) == len(variants) - 2  # only the device and baseline copies share


def test_a_pass_that_wrote_many_rows_refreshes_the_planner_statistics(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that writes `STATISTICS_AFTER` rows or more has PostgreSQL analyse the table in
    its transaction (its own rows counted): a later pass's batched reads by device use the
    index instead of scanning a table the statistics still call empty. SQLite: nothing runs."""
    ids = [enrol(store, f"web-{n}") for n in range(3)]
    analysed: list[str] = []
    refresh = compliance_store.refresh_statistics
    monkeypatch.setattr(
        compliance_store,
        "refresh_statistics",
        lambda conn: (analysed.append(conn.dialect.name), refresh(conn))[1],
    )
    monkeypatch.setattr(compliance_store, "STATISTICS_AFTER", 7)
    assert 6 == write(store, [record(i, b, "USN-1-1") for i in ids for b in BASELINES], ids)
    assert [] == analysed  # 6 rows: below the mark
    more = [enrol(store, "web-3")]
    records = [record(i, b) for i in [*ids, *more] for b in BASELINES]
    assert 8 == write(store, records, [*ids, *more])
    assert [store.dialect] == analysed
    if store.dialect == "postgresql":
        with store.read() as conn:
            estimated = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE relname = 'compliance'")
            ).scalar_one()
        assert 8 == estimated
