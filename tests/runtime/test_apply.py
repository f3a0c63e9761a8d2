"""`runtime.apply`: compliance written in batches of whole devices, on both engines.

Real stores (the `store` fixture: SQLite, then PostgreSQL when configured); plans are written by
hand, as the planner would give them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core.compliance import BaselineCompliance, ComplianceState
from controller.core.plan import Plan
from controller.runtime import apply
from controller.store import Store, devices
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
