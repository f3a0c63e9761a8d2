"""The fleet pass in chunks: the rows of one transaction, resumable, and never stale over a report.

Real stores on both engines; a failure or a report "between chunks" is injected through the
store's fence, which runs at the start of every write transaction (so after the chunk was read
and evaluated, before it is written), exactly where a concurrent writer would land.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from applicabilityhelpers import CATALOGUE, SERVER_2019, debian

from controller.core.patches import PatchRecord, ProductBuild
from controller.feeds.common import FeedResult
from controller.kinds.common import Classification, OsFamily, Severity
from controller.runtime import feeds
from controller.store import catalogue, devices, findings, reports, schema
from controller.testing import json_logs

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

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
# The import the tests re-evaluate for: a newer openssl, February's KB, one advisory withdrawn.
CURL = debian("curl", "7.88.1-10+deb12u8")  # no fleet device has curl, but a late report
UPDATE = (
    debian("openssl", "3.0.16-1~deb12u1"),
    CURL,
    FEBRUARY,
    replace(CATALOGUE[1], withdrawn=True),
)
WINDOWS = ("windows", "Windows Server 2019", "1809")
DEBIAN = ("linux", "Debian GNU/Linux", "12")
UBUNTU = ("linux", "Ubuntu", "24.04")  # a release the catalogue does not cover
FLEET = 11


class StoppedMidwayError(Exception):
    """Raised by a test's fence: the process stopped midway."""


def packages(openssl: str) -> list[dict[str, Any]]:
    return [
        {"name": "openssl", "version": openssl, "arch": "amd64"},
        {"name": "openssh-client", "version": "1:9.2p1-2+deb12u6", "arch": "amd64"},
    ]


def inventory(index: int) -> tuple[tuple[str, str, str], reports.Inventory]:
    """Device `index` of the test fleet: Debian at three openssl versions, Windows at two
    builds, and an uncovered Ubuntu host."""
    if index % 4 == 3:
        builds = ("10.0.17763.5206", "10.0.17763.5329")
        return WINDOWS, reports.Inventory(builds[index % 2], None)
    if index % 5 == 4:
        return UBUNTU, reports.Inventory(None, None, packages("3.0.13-0ubuntu3"))
    versions = ("3.0.14-1~deb12u2", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1")
    return DEBIAN, reports.Inventory(None, None, packages(versions[index % 3]))


def build_fleet(store: Store, clock: SettableClock) -> list[str]:
    """FLEET devices that reported inventories against CATALOGUE, then UPDATE imported without
    re-evaluating: every feed document is stale until a fleet pass."""
    catalogue.upsert_records(store, CATALOGUE, now=clock())
    ids = []
    with store.write() as conn:
        for index in range(FLEET):
            (family, name, version), found = inventory(index)
            enrolment = devices.Enrolment(
                tenant="acme/retail",
                hostname=f"host-{index:02}",
                os_family=family,
                os_name=name,
                os_version=version,
                role="server",
                agent_version="1.0.0",
            )
            device_id = devices.enrol(conn, enrolment, poll_interval=60, now=clock()).device_id
            reports.write_reports(conn, [reports.Report(device_id, inventory=found)], now=clock())
            ids.append(device_id)
    clock.advance(hours=1)
    catalogue.upsert_records(store, UPDATE, now=clock())
    return sorted(ids)


def rows(conn: Connection) -> dict[str, Any]:
    """What a fleet pass writes: every `feed` document and every device's kernel flag."""
    s, d = schema.patch_states.c, schema.devices.c
    documents = conn.execute(
        sa.select(s.device_id, s.observed_at, s.patches).where(s.source == findings.FEED)
    )
    flags = conn.execute(sa.select(d.id, d.kernel_reboot))
    return {
        "feed": {row.device_id: (row.observed_at, row.patches) for row in documents},
        "kernel": {row.id: row.kernel_reboot for row in flags},
    }


def uncommitted(store: Store, work: Callable[[Connection], Any]) -> Any:
    """What `work` returns in a write transaction that is then rolled back."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            return work(conn)
        finally:
            transaction.rollback()


def one_transaction_rows(store: Store, clock: SettableClock) -> dict[str, Any]:
    """The rows the reference (one-transaction) pass leaves, without committing them."""

    def reference(conn: Connection) -> dict[str, Any]:
        findings.reevaluate_fleet(conn, now=clock())
        return rows(conn)

    return uncommitted(store, reference)


def stored_rows(store: Store) -> dict[str, Any]:
    with store.read() as conn:
        return rows(conn)


def on_write(store: Store, number: int, action: Callable[[Connection], None]) -> Store:
    """`store`, whose `number`th write transaction (1-based) first runs `action`."""
    count = 0

    def check(conn: Connection) -> None:
        nonlocal count
        count += 1
        if count == number:
            action(conn)

    return store.fenced(check)


def interrupt(_conn: Connection) -> None:
    raise StoppedMidwayError


@pytest.mark.parametrize("chunk_size", [1, 3, FLEET, 500], ids=lambda n: f"chunk-{n}")
def test_chunks_leave_the_rows_of_one_transaction(
    store: Store, clock: SettableClock, chunk_size: int
) -> None:
    """Whatever the chunk size, the chunked pass leaves exactly the one-transaction rows."""
    build_fleet(store, clock)
    expected = one_transaction_rows(store, clock)
    fleet = feeds.reevaluate_fleet(store, now=clock(), chunk_size=chunk_size)
    assert (expected, True, FLEET, -(-FLEET // chunk_size)) == (
        stored_rows(store),
        fleet.complete,
        fleet.evaluation.devices,
        fleet.chunks,
    )


def test_the_counts_are_the_one_transaction_counts(store: Store, clock: SettableClock) -> None:
    """Chunks add up to the reference pass's counts."""
    build_fleet(store, clock)
    expected = uncommitted(store, lambda conn: findings.reevaluate_fleet(conn, now=clock()))
    assert expected == feeds.reevaluate_fleet(store, now=clock(), chunk_size=2).evaluation


@pytest.mark.parametrize("failing_write", [1, 2, 4], ids=lambda k: f"fails-at-write-{k}")
def test_an_interrupted_pass_is_completed_by_the_next(
    store: Store, clock: SettableClock, failing_write: int
) -> None:
    """A pass that stops after chunk k leaves k chunks written; the next run resumes after
    them and the rows end as one transaction's."""
    build_fleet(store, clock)
    expected = one_transaction_rows(store, clock)
    with pytest.raises(StoppedMidwayError):
        feeds.reevaluate_fleet(on_write(store, failing_write, interrupt), now=clock(), chunk_size=3)
    with store.read() as conn:
        progress = findings.read_reevaluation(conn)
    resumed = feeds.reevaluate_if_pending(store, now=clock(), chunk_size=3)
    assert resumed is not None
    assert (expected, True, FLEET - 3 * (failing_write - 1)) == (
        stored_rows(store),
        resumed.complete,
        resumed.evaluation.devices,
    )
    assert (failing_write > 1) == (progress is not None and progress.after != "")
    assert feeds.reevaluate_if_pending(store, now=clock()) is None  # complete: nothing to do


def test_an_unchanged_import_finishes_an_interrupted_pass(
    store: Store, clock: SettableClock
) -> None:
    """`feed import` of records already in the catalogue still completes the stopped pass."""
    build_fleet(store, clock)
    expected = one_transaction_rows(store, clock)
    with pytest.raises(StoppedMidwayError):
        feeds.reevaluate_fleet(on_write(store, 2, interrupt), now=clock(), chunk_size=4)
    outcome = feeds.import_records(store, FeedResult(records=UPDATE), now=clock(), chunk_size=4)
    assert (expected, 0, FLEET - 4) == (
        stored_rows(store),
        outcome.new + outcome.updated,
        outcome.fleet.devices if outcome.fleet else None,
    )


CURL_INSTALLED = [{"name": "curl", "version": "7.88.1-10+deb12u5", "arch": "amd64"}]
# a finding no stale evaluation can produce: curl missing, nothing else
NEW_INVENTORY = reports.Inventory(None, None, packages("3.0.16-1~deb12u1") + CURL_INSTALLED)
# whatever the device ran (`build_fleet` orders devices by id, not by kind): now Debian
AS_DEBIAN = reports.Facts("{}", *DEBIAN)


@pytest.mark.parametrize(
    ("landing_write", "device_index"),
    [(1, 0), (1, 2), (2, 0), (2, 8)],
    ids=["in-its-chunk", "later-in-its-chunk", "after-its-chunk", "before-its-chunk"],
)
def test_a_report_between_read_and_write_is_not_overwritten(
    store: Store, clock: SettableClock, landing_write: int, device_index: int
) -> None:
    """A report with a new OS and inventory that lands while the pass runs keeps its findings:
    its device is evaluated again under the lock, not written from the stale read."""
    ids = build_fleet(store, clock)
    device = ids[device_index]

    def report(conn: Connection) -> None:
        reports.write_reports(
            conn, [reports.Report(device, facts=AS_DEBIAN, inventory=NEW_INVENTORY)], now=clock()
        )

    fleet = feeds.reevaluate_fleet(
        on_write(store, landing_write, report), now=clock(), chunk_size=3
    )
    expected = one_transaction_rows(store, clock)  # the reference, over the inventories now
    found = stored_rows(store)
    assert (expected, True, [CURL.id], FLEET) == (
        found,
        fleet.complete,
        [entry["id"] for entry in found["feed"][device][1]["missing"]],
        fleet.evaluation.devices,
    )


def test_a_device_deleted_midway_is_skipped(store: Store, clock: SettableClock) -> None:
    """A device removed between the read and the write gets no row back."""
    ids = build_fleet(store, clock)

    def delete(conn: Connection) -> None:
        conn.execute(schema.devices.delete().where(schema.devices.c.id == ids[1]))

    fleet = feeds.reevaluate_fleet(on_write(store, 1, delete), now=clock(), chunk_size=3)
    assert (one_transaction_rows(store, clock), FLEET - 1) == (
        stored_rows(store),
        fleet.evaluation.devices,
    )


def test_a_newer_import_midway_takes_the_pass_over(store: Store, clock: SettableClock) -> None:
    """A catalogue changed between chunks stops the pass unwritten (the newer import's own pass
    covers the fleet); the pending pass then leaves the rows of the newer catalogue."""
    build_fleet(store, clock)
    newer = debian("openssl", "3.0.17-1~deb12u1")

    def other_import(conn: Connection) -> None:
        catalogue.upsert_records(conn, (newer,), now=clock())

    stopped = feeds.reevaluate_fleet(on_write(store, 2, other_import), now=clock(), chunk_size=3)
    finished = feeds.reevaluate_if_pending(store, now=clock(), chunk_size=3)
    assert (False, 3, True, FLEET) == (
        stopped.complete,
        stopped.evaluation.devices,
        finished.complete if finished else None,
        finished.evaluation.devices if finished else None,
    )
    assert one_transaction_rows(store, clock) == stored_rows(store)


def test_progress_counts_every_device(store: Store, clock: SettableClock) -> None:
    """Progress is reported after each chunk, ending at the fleet's size."""
    build_fleet(store, clock)
    seen: list[tuple[int, int]] = []
    feeds.reevaluate_fleet(
        store, now=clock(), chunk_size=4, on_progress=lambda p: seen.append((p.done, p.total))
    )
    assert [(4, FLEET), (8, FLEET), (FLEET, FLEET)] == seen


def test_chunk_size_below_one_is_refused(store: Store, clock: SettableClock) -> None:
    """A chunk of no device would never end."""
    with pytest.raises(ValueError, match="at least 1"):
        feeds.reevaluate_fleet(store, now=clock(), chunk_size=0)


def test_the_service_logs_progress_lines(
    store: Store, clock: SettableClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The service's callback logs devices, total and rate (here after every chunk)."""
    build_fleet(store, clock)
    with json_logs(capsys) as lines:
        feeds.reevaluate_fleet(
            store, now=clock(), chunk_size=6, on_progress=feeds.progress_logger(every=0.0)
        )
    found = [
        (line["devices"], line["total"], line["per_second"] >= 0)
        for line in lines
        if line.get("event") == "fleet re-evaluation progress"
    ]
    assert [(6, FLEET, True), (FLEET, FLEET, True)] == found
