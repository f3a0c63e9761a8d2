"""The job ledger kept by device (`core.observed.JobLedger`) and its index (`planning.ledger`):
a ledger brought up to date device by device answers what one read whole answers."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.observed import JobKind, JobLedger, JobState, JobView, PatchResult
from controller.core.planning.ledger import Ledger, device_history

START = datetime(2026, 11, 1, tzinfo=UTC)
DEVICES = tuple(f"dev-{n:02d}" for n in range(12))
STATES = tuple(JobState)


def random_job(rng: random.Random, number: int) -> JobView:
    kind = rng.choice(tuple(JobKind))
    window = rng.choice(("acme/sunday", "acme/nightly")) if kind is JobKind.INSTALL else None
    patches = tuple(rng.sample(("KB1", "KB2", "KB3"), rng.randint(1, 2)))
    return JobView(
        id=f"job-{number:04d}",
        device_id=rng.choice(DEVICES),
        kind=kind,
        state=rng.choice(STATES),
        patch_ids=patches if kind is JobKind.INSTALL else (),
        window=window,
        occurrence=rng.choice(("2026-11-01", "2026-11-08")) if window else None,
        created_at=START + timedelta(minutes=rng.randint(0, 5000)),
        results={p: rng.choice(tuple(PatchResult)) for p in patches if rng.random() < 0.5},
    )


def indexes(ledger: Ledger) -> tuple[object, ...]:
    return (
        ledger.jobs,
        ledger.ids,
        dict(ledger.attempted),
        dict(ledger.running),
        dict(ledger.failed_devices),
        ledger.in_flight,
    )


@pytest.mark.parametrize("seed", range(20))
def test_a_ledger_updated_device_by_device_equals_one_read_whole(seed: int) -> None:
    """Random jobs replaced, added and removed a few devices at a time: the ledger and its
    index, kept up to date, equal those built from all the jobs at once; iteration, length
    and the devices in flight follow; untouched devices keep their very entries."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    jobs = {job.id: job for job in (random_job(rng, n) for n in range(60))}
    ledger = JobLedger.of(jobs.values())
    index = Ledger.of(ledger)
    assert all(index.history(d) == device_history(ledger.of_device(d)) for d in DEVICES)
    number = 60
    for _ in range(15):
        touched = set(rng.sample(DEVICES, rng.randint(1, 3)))
        for job in [j for j in jobs.values() if j.device_id in touched]:
            if rng.random() < 0.3:
                del jobs[job.id]
            elif rng.random() < 0.5:
                jobs[job.id] = replace(random_job(rng, number), id=job.id, device_id=job.device_id)
        for _ in range(rng.randint(0, 4)):
            number += 1
            job = random_job(rng, number)
            if job.device_id in touched:
                jobs[job.id] = job
        fresh = {d: [j for j in jobs.values() if j.device_id == d] for d in touched}
        updated = ledger.replaced(fresh)
        whole = JobLedger.of(jobs.values())
        assert updated == whole
        assert list(updated.by_device) == sorted(updated.by_device)
        assert sorted(updated, key=lambda j: j.id) == sorted(jobs.values(), key=lambda j: j.id)
        assert len(updated) == len(jobs)
        assert updated.in_flight == {j.device_id for j in jobs.values() if j.state.in_flight}
        assert updated.differing(ledger) <= touched
        untouched = set(updated.by_device) - touched
        assert all(updated.by_device[d] is ledger.by_device[d] for d in untouched)
        index.update(updated)
        assert indexes(index) == indexes(Ledger.of(whole))
        for device_id in DEVICES:  # kept from earlier steps where the jobs are the same
            assert index.history(device_id) == device_history(whole.of_device(device_id))
        ledger = updated
