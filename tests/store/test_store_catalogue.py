"""The patch catalogue in the store: idempotent upserts, sticky withdrawal, filtered loads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from controller.core.patches import FixedPackage, PatchRecord
from controller.kinds.common import Classification, OsFamily, Severity
from controller.store import Store, catalogue

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

KB = PatchRecord(
    id="KB5044284",
    title="2026-10 Cumulative Update for Windows Server 2022",
    vendor="Microsoft",
    os=OsFamily.WINDOWS,
    os_versions=("Windows Server 2022",),
    classification=Classification.SECURITY,
    severity=Severity.CRITICAL,
    released=date(2026, 10, 13),
    rating=9.8,
    cves=("CVE-2026-20001",),
    reboot_required=True,
)
USN = PatchRecord(
    id="USN-7123-1",
    title="OpenSSL vulnerabilities",
    os=OsFamily.LINUX,
    severity=Severity.IMPORTANT,
    classification=Classification.SECURITY,
    packages=(FixedPackage("openssl", "3.0.13-0ubuntu3.5", "ubuntu:24.04", "amd64"),),
)


def test_upsert_counts_new_updated_unchanged(store: Store) -> None:
    """New ids are new, changed ones updated, identical ones unchanged; a rerun changes nothing."""
    first = catalogue.upsert_records(store, [KB, USN], now=NOW)
    second = catalogue.upsert_records(store, [replace(KB, rating=9.9), USN], now=NOW)
    third = catalogue.upsert_records(store, [replace(KB, rating=9.9), USN], now=NOW)
    assert [(2, 0, 0), (0, 1, 1), (0, 0, 2)] == [
        (c.new, c.updated, c.unchanged) for c in (first, second, third)
    ]
    assert 9.9 == catalogue.load_catalogue(store)["KB5044284"].rating


def test_records_round_trip(store: Store) -> None:
    """What is loaded equals what was imported, fixed packages included."""
    catalogue.upsert_records(store, [KB, USN], now=NOW)
    assert {"KB5044284": KB, "USN-7123-1": USN} == catalogue.load_catalogue(store)


def test_withdrawn_stays_withdrawn(store: Store) -> None:
    """A record once withdrawn stays withdrawn when a later import omits the flag."""
    catalogue.upsert_records(store, [replace(KB, withdrawn=True)], now=NOW)
    counts = catalogue.upsert_records(store, [replace(KB, title="re-published")], now=NOW)
    loaded = catalogue.load_catalogue(store)["KB5044284"]
    assert (1, True, "re-published") == (counts.updated, loaded.withdrawn, loaded.title)
    assert {} == catalogue.load_catalogue(store, include_withdrawn=False)


def test_load_filters_by_os_and_works_in_a_transaction(store: Store) -> None:
    """The catalogue loads per OS family, from a store or inside the caller's transaction."""
    with store.write() as conn:
        catalogue.upsert_records(conn, [KB, USN], now=NOW)
        inside = catalogue.load_catalogue(conn, os=OsFamily.LINUX)
    assert ["USN-7123-1"] == list(inside)
    assert 2 == catalogue.catalogue_size(store)


def test_duplicate_ids_in_one_import_keep_the_last(store: Store) -> None:
    """When an import names an id twice, the last record wins."""
    counts = catalogue.upsert_records(store, [KB, replace(KB, title="second")], now=NOW)
    assert (1, "second") == (counts.total, catalogue.load_catalogue(store)["KB5044284"].title)
