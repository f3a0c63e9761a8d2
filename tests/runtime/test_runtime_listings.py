"""The fleet listings shared by the read API and the command line: camelCase rows, the device's
name and per-patch results on jobs, online on devices, tenant scopes, and a page that says when
it was cut (issue 16, item 6). Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.runtime import listings
from controller.store import Store, jobs
from controller.store.job_states import JobKind, JobState
from controller.testing.stores import enrol_linux

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def enrol(store: Store, tenant: str, hostname: str, *, at: datetime = NOW) -> str:
    with store.write() as conn:
        return enrol_linux(conn, hostname, tenant=tenant, now=at)


def install(device_id: str, tenant: str, job_id: str) -> jobs.NewJob:
    return jobs.NewJob(
        id=job_id,
        device_id=device_id,
        tenant=tenant,
        kind=JobKind.INSTALL,
        revision="main@sha1:abc",
        patch_ids=("USN-7123-1", "USN-6791-1"),
        window_key="acme/weekly@2026-11-22T01:00Z",
    )


@pytest.fixture
def fleet(store: Store) -> dict[str, str]:
    """Two retail devices (one seen an hour ago), one logistics device, a finished install."""
    ids = {
        "shop-01": enrol(store, "acme/retail", "shop-01"),
        "shop-02": enrol(store, "acme/retail", "shop-02", at=NOW - timedelta(hours=1)),
        "depot-01": enrol(store, "acme/logistics", "depot-01"),
    }
    with store.write() as conn:
        jobs.insert_jobs(conn, [install(ids["shop-01"], "acme/retail", "i-1")], now=NOW)
        jobs.insert_jobs(conn, [install(ids["depot-01"], "acme/logistics", "i-2")], now=NOW)
        event = jobs.JobEvent(
            state=JobState.FAILED,
            patches=(
                {"id": "USN-7123-1", "result": "installed"},
                {"id": "USN-6791-1", "result": "failed", "reason": "dpkg: error 100"},
            ),
            output="Authorization: Bearer pcr_secretsecretsecret\nE: dpkg was interrupted",
        )
        jobs.record_event(conn, device_id=ids["shop-01"], job_id="i-1", event=event, now=NOW)
    return ids


def test_devices_carry_online_and_last_seen_in_scope(store: Store, fleet: dict[str, str]) -> None:
    """A client scope sees its devices by name, each online or offline by its poll interval."""
    with store.read() as conn:
        page = listings.devices(
            conn, scope="acme/retail", now=NOW + timedelta(seconds=30), limit=10
        )
    assert [("shop-01", True), ("shop-02", False)] == [(r["name"], r["online"]) for r in page.rows]
    assert (NOW.isoformat(), "24.04", False) == (
        page.rows[0]["lastSeen"],
        page.rows[0]["osVersion"],
        page.truncated,
    )


@pytest.mark.parametrize(
    ("scope", "limit", "expected"),
    [
        pytest.param(None, 10, (["depot-01", "shop-01", "shop-02"], False), id="every-tenant"),
        pytest.param(None, 2, (["depot-01", "shop-01"], True), id="cut-at-the-limit"),
        pytest.param(None, 3, (["depot-01", "shop-01", "shop-02"], False), id="exactly-the-limit"),
        pytest.param("acme/logistics", 10, (["depot-01"], False), id="client-scope"),
    ],
)
def test_a_page_says_when_it_was_cut(
    store: Store,
    fleet: dict[str, str],
    scope: str | None,
    limit: int,
    expected: tuple[list[str], bool],
) -> None:
    """`truncated` is true only when more rows matched than the limit."""
    with store.read() as conn:
        page = listings.devices(conn, scope=scope, now=NOW, limit=limit)
    assert expected == ([r["name"] for r in page.rows], page.truncated)


def test_jobs_name_their_device_and_results(store: Store, fleet: dict[str, str]) -> None:
    """A job row has the device's name and the per-patch results the agent reported."""
    with store.read() as conn:
        page = listings.jobs(conn, scope="acme/retail", limit=10)
    (row,) = page.rows
    assert ("i-1", fleet["shop-01"], "shop-01", "failed") == (
        row["id"],
        row["deviceId"],
        row["deviceName"],
        row["state"],
    )
    assert {
        "USN-7123-1": {"result": "installed", "reason": None},
        "USN-6791-1": {"result": "failed", "reason": "dpkg: error 100"},
    } == {
        k: {"result": v.get("result"), "reason": v.get("reason")} for k, v in row["results"].items()
    }


def test_one_job_has_events_and_masked_output_and_stays_in_scope(
    store: Store, fleet: dict[str, str]
) -> None:
    """`job` shows the events and the output without credentials; another tenant gets None."""
    with store.read() as conn:
        shown = listings.job(conn, "i-1", scope="acme")
        foreign = listings.job(conn, "i-1", scope="acme/logistics")
        missing = listings.job(conn, "nope", scope=None)
    assert shown is not None
    assert (None, None) == (foreign, missing)
    assert ["failed"] == [e["state"] for e in shown["events"]]
    assert "pcr_secretsecretsecret" not in str(shown)
    assert "E: dpkg was interrupted" in shown["output"]
