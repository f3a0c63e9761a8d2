"""Grouped info alerts (issue 14.3): one `Search` per (tenant, PatchWindow occurrence) and one
`Initiate` per tenant for a pass's batch; warnings stay per device; a batch of one keeps the
per-device alert."""

from __future__ import annotations

from controller.core.observed import JobKind
from controller.core.plan import AlertSpec, plan
from controller.kinds.notifications import AlertSeverity, EventType
from controller.testing.fleets import SUNDAY_OPEN, desired, device, job, observed, scan

OCCURRENCE = "2026-11-29T01:00Z"


def of_type(alerts: tuple[AlertSpec, ...], kind: EventType) -> list[AlertSpec]:
    return [a for a in alerts if a.type is kind]


def test_one_search_per_tenant_and_occurrence_with_counts_and_a_bounded_sample() -> None:
    """12 devices of acme/retail and 2 of acme in one occurrence: two Search alerts."""
    retail = [device(f"r{n:02d}") for n in range(12)]
    partner = [device(f"p{n}", tenant="acme") for n in range(2)]
    pairs = [(d, scan("KB-SEC", "KB-CRIT")) for d in retail]
    pairs += [(d, scan("KB-SEC")) for d in partner]
    result = plan(desired(), observed(*pairs), now=SUNDAY_OPEN)

    search = of_type(result.alerts, EventType.SEARCH)
    assert [("acme", None), ("acme/retail", None)] == [(a.tenant, a.device_id) for a in search]
    assert [
        f"1 missing patch(es) found and approved on 2 devices in PatchWindow acme/weekly "
        f"occurrence {OCCURRENCE}: p0, p1",
        f"2 missing patch(es) found and approved on 12 devices in PatchWindow acme/weekly "
        f"occurrence {OCCURRENCE}: r00, r01, r02, r03, r04, r05, r06, r07, r08, r09 and 2 more",
    ] == [a.message for a in search]
    assert {
        "window": "acme/weekly",
        "occurrence": OCCURRENCE,
        "devices": 12,
        "patches": 2,
        "installs": 24,
        "sample": [f"r{n:02d}" for n in range(10)],
    } == search[1].details
    assert {AlertSeverity.INFO} == {a.severity for a in search}


def test_search_keys_follow_the_issued_jobs() -> None:
    """The same decision gives the same key; another batch (one more device) another key."""
    fleet = [(device(f"d{n}"), scan("KB-SEC")) for n in range(3)]
    first = of_type(plan(desired(), observed(*fleet), now=SUNDAY_OPEN).alerts, EventType.SEARCH)
    again = of_type(plan(desired(), observed(*fleet), now=SUNDAY_OPEN).alerts, EventType.SEARCH)
    more = of_type(
        plan(desired(), observed(*fleet, (device("d3"), scan("KB-SEC"))), now=SUNDAY_OPEN).alerts,
        EventType.SEARCH,
    )
    assert [a.key for a in first] == [a.key for a in again]
    assert first[0].key.startswith(f"Search:acme/retail:acme/weekly@{OCCURRENCE}:")
    assert first[0].key != more[0].key


def test_a_repeated_pass_raises_no_search() -> None:
    """Installs already in the ledger are not issued again: no Search alert at all."""
    fleet = [device(f"d{n}") for n in range(3)]
    first = plan(desired(), observed(*((d, scan("KB-SEC")) for d in fleet)), now=SUNDAY_OPEN)
    ledger = tuple(
        job(spec.id, next(d for d in fleet if d.id == spec.device_id), patches=spec.patch_ids)
        for spec in first.issue
        if spec.kind is JobKind.INSTALL
    )
    assert 3 == len(ledger)
    second = plan(
        desired(), observed(*((d, scan("KB-SEC")) for d in fleet), jobs=ledger), now=SUNDAY_OPEN
    )
    assert ([], []) == (
        [j.id for j in second.issue if j.kind is JobKind.INSTALL],
        of_type(second.alerts, EventType.SEARCH),
    )


def test_a_batch_of_one_keeps_the_per_device_alert() -> None:
    """One device: the message names it, the alert links it, the key is the per-device one."""
    one = device("w1")
    result = plan(desired(), observed((one, scan("KB-SEC", "KB-CRIT"))), now=SUNDAY_OPEN)
    (search,) = of_type(result.alerts, EventType.SEARCH)
    assert ("2 missing patch(es) found and approved on w1", "id-w1", None) == (
        search.message,
        search.device_id,
        search.tenant,
    )
    assert search.key.startswith("Search:id-w1:")


def test_one_initiate_per_tenant_counted_by_occasion() -> None:
    """Three devices without a scan: one Initiate alert for their initial scans."""
    fresh = [device(f"n{n}") for n in range(3)]
    result = plan(desired(), observed(*((d, None) for d in fresh)), now=SUNDAY_OPEN)
    (initiate,) = of_type(result.alerts, EventType.INITIATE)
    scans = sorted(j.id for j in result.issue if j.kind is JobKind.SCAN)
    assert 3 == len(scans)
    assert (
        "scan initiated on 3 devices: n0, n1, n2",
        "acme/retail",
        None,
        {"devices": 3, "occasions": {"initial": 3}, "sample": ["n0", "n1", "n2"]},
    ) == (initiate.message, initiate.tenant, initiate.device_id, initiate.details)


def test_warnings_stay_per_device() -> None:
    """Offline devices in an open occurrence: one AgentOfflineInWindow each, naming it."""
    offline = [device(f"o{n}", online=False) for n in range(2)]
    result = plan(desired(), observed(*((d, scan("KB-SEC")) for d in offline)), now=SUNDAY_OPEN)
    warnings = of_type(result.alerts, EventType.AGENT_OFFLINE_IN_WINDOW)
    assert ["id-o0", "id-o1"] == [a.device_id for a in warnings]
    assert [] == of_type(result.alerts, EventType.SEARCH)
