"""Crashes and replicas, end to end: real `patchctl serve` processes on a real policy repository
and database, simulated agents over the real protocol, kill -9 (DESIGN §7).

What must hold whatever is killed when: no report or job event the server acknowledged is lost,
no work is done twice (a patch in two install jobs of one window occurrence, two jobs in flight
on a device, an alert raised twice), and on PostgreSQL exactly one replica reconciles, another
taking over within 15 s of the leader's death.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from controller.store import leases, open_store, schema, tokens
from controller.testing import PolicyRepo
from controller.testing.replicas import (
    Fleet,
    Replica,
    duplicated_work,
    lost_acknowledgements,
    wait_for,
)

# Each start of `serve` costs an interpreter and its imports: about 1.5 s on an idle machine,
# far more on a busy one; the timeout leaves room for the latter.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TENANTS = ("acme/retail", "acme/logistics", "acme")
# A window open all day, every day, auto-approving Windows security patches: agents get install
# jobs as soon as they have reported, so crashes land in the middle of real work.
POLICY = {
    "inventory/tenants.yaml": """
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail, logistics]}
""",
    "inventory/groups.yaml": """
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-windows, tenant: acme}
spec: {selector: {os: windows}}
""",
    "policies/baselines.yaml": """
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: windows-security, tenant: acme}
spec:
  os: windows
  targets: {groups: [all-windows]}
  rules: [{classifications: [security, critical]}]
""",
    "policies/whitelists.yaml": """
apiVersion: patchctl/v1
kind: Whitelist
metadata: {name: windows-security, tenant: acme}
spec:
  targets: {groups: [all-windows]}
  patches: [{classifications: [security, critical]}]
""",
    "policies/windows.yaml": """
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: always, tenant: acme}
spec:
  targets: {groups: [all-windows]}
  recurrence: {cron: "0 0 * * *"}
  timezone: UTC
  duration: 24h
  approval: auto
  rollout: {maxConcurrent: 100%, maxFailures: 100%}
""",
}
SERVE_OPTIONS = ("--poll-interval", "1s", "--interval", "3s")


@pytest.fixture
def servers() -> Iterator[list[Replica]]:
    """The `serve` processes of a test; any still running at the end are killed."""
    started: list[Replica] = []
    yield started
    for serve in started:
        serve.reap()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    policy = PolicyRepo(tmp_path / "repo")
    for name, text in POLICY.items():
        policy.write(name, text.lstrip())
    policy.commit("an always-open window")
    return policy.path


def enrolment_tokens(database_url: str) -> dict[str, str]:
    """One enrolment token per tenant, created in the (migrated) store."""
    store = open_store(database_url)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            return {
                tenant: tokens.create_token(
                    conn,
                    kind=tokens.TokenKind.ENROLLMENT,
                    tenant=tenant,
                    expires_at=now + timedelta(hours=1),
                    now=now,
                ).secret
                for tenant in TENANTS
            }
    finally:
        store.close()


def all_empty(found: dict[str, list[object]]) -> dict[str, list[object]]:
    return {key: [] for key in found}


def issued_jobs(database_url: str) -> int:
    store = open_store(database_url, migrate=False)
    try:
        with store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(schema.jobs)).scalar())
    finally:
        store.close()


def read_token(database_url: str) -> str:
    store = open_store(database_url)
    now = datetime.now(tz=UTC)
    try:
        with store.write() as conn:
            return tokens.create_token(
                conn, kind=tokens.TokenKind.READ, tenant="acme", now=now
            ).secret
    finally:
        store.close()


def findings(
    database_url: str, fleet: Fleet
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], leases.Lease | None]:
    """What the store shows at the end: acknowledgements lost, work done twice, the lease."""
    store = open_store(database_url)
    try:
        with store.read() as conn:
            lease = leases.read(conn)
        return lost_acknowledgements(store, fleet.acknowledged), duplicated_work(store), lease
    finally:
        store.close()


def problems_logged(*servers: Replica) -> list[str]:
    """Warnings and errors a healthy run does not log (a lost lease is expected in failover)."""
    return [
        f"{line.get('event')}: {line.get('exception', line.get('error', ''))}"[:300]
        for serve in servers
        for line in serve.log_lines()
        if line.get("level") in {"error", "critical"}
        or any(word in str(line) for word in ("duplicate key", "reconcile crashed", "chore failed"))
    ]


def test_ten_kill_9s_lose_no_acknowledged_report_and_duplicate_no_job(
    database_url: str, repo: Path, tmp_path: Path, servers: list[Replica]
) -> None:
    """Killing `serve` with -9 ten times under 20 busy agents loses nothing it acknowledged
    and makes no job, install or alert twice."""
    rng = random.Random(14)  # noqa: S311 - when to kill, reproducibly
    serve = Replica.configure(
        repo=repo,
        database_url=database_url,
        state_dir=tmp_path / "state",
        log_path=tmp_path / "serve.log",
        extra=SERVE_OPTIONS,
    )
    servers.append(serve)
    secrets = enrolment_tokens(database_url)
    fleet = Fleet(serve.base, {t: secrets[t] for t in TENANTS[:2]}, devices=20, duration=280)
    serve.start().wait_healthy()
    fleet.start()
    # every agent enrolled and scanned first: one refused enrolment waits 30 s to try again
    wait_for(lambda: len(fleet.acknowledged.scans) >= 20, timeout=60)
    kills = 0
    try:
        for _ in range(10):
            time.sleep(rng.uniform(0.3, 1.5))
            serve.kill()
            kills += 1
            serve.start().wait_healthy()
        time.sleep(4)  # a pass or two after the last start, with the agents still busy
    finally:
        fleet.stop()
        code = serve.stop()
    lost, duplicated, _ = findings(database_url, fleet)
    assert 0 == code
    assert 10 == kills
    assert ({"scans": [], "events": []}, all_empty(duplicated)) == (lost, duplicated)
    assert fleet.acknowledged.events  # jobs ran through the crashes
    assert 0 == fleet.stats.errors.get("re-enrolled", 0)  # no device token was forgotten
    assert [] == problems_logged(serve)


def test_two_replicas_one_leads_and_the_other_takes_over_within_15_s(
    postgres_url: str, repo: Path, tmp_path: Path, servers: list[Replica]
) -> None:
    """Two replicas on one PostgreSQL: exactly one leads, agents are served by the other; after
    kill -9 of the leader the other leads within 15 s, and no work is done twice."""
    url = postgres_url
    secrets, reader = enrolment_tokens(url), read_token(url)
    # device names are unique per tenant: the late fleet enrols in a tenant of its own
    early, late = {t: secrets[t] for t in TENANTS[:2]}, {"acme": secrets["acme"]}
    first, second = (
        Replica.configure(
            repo=repo,
            database_url=url,
            state_dir=tmp_path / f"state-{name}",
            log_path=tmp_path / f"{name}.log",
            extra=SERVE_OPTIONS,
        )
        for name in ("first", "second")
    )
    servers.extend((first, second))
    first.start(), second.start()
    first.wait_healthy()
    second.wait_healthy()
    wait_for(lambda: [first.leads(), second.leads()].count(True) == 1, timeout=15)
    leader, follower = (first, second) if first.leads() else (second, first)
    fleet = Fleet(follower.base, early, devices=20, duration=280).start()
    newcomers = None  # agents enrolling after the takeover: the new leader plans for them
    try:
        wait_for(lambda: issued_jobs(url) > 0, timeout=30)
        roles = []
        for _ in range(5):
            roles.append((leader.leads(), follower.leads()))
            time.sleep(0.3)
        leader.kill()
        took_over = wait_for(follower.leads, timeout=15, every=0.1)
        ready = follower.readyz() or {}
        elected = [line for line in follower.log_lines() if line.get("event") == "leading"]
        issued_at_takeover = issued_jobs(url)
        newcomers = Fleet(follower.base, late, devices=5, duration=280, seed=6).start()
        wait_for(lambda: issued_jobs(url) > issued_at_takeover, timeout=20)
        status = httpx.get(
            f"{follower.base}/api/v1/status",
            headers={"Authorization": f"Bearer {reader}"},
            timeout=10,
        ).json()
    finally:
        fleet.stop()
        if newcomers is not None:
            newcomers.stop()
        code = follower.stop()
    lost, duplicated, lease = findings(url, fleet)
    assert [(True, False)] * 5 == roles
    assert took_over < 15
    assert lease is not None
    assert (2, elected[-1]["replica"]) == (lease.epoch, lease.holder)
    assert (True, 2) == (ready["leader"], ready["epoch"])
    assert str(ready["lastAppliedRevision"]).startswith("main@sha1:")
    assert (True, 2) == (status["leader"]["thisReplica"], status["leader"]["epoch"])
    assert ({"scans": [], "events": []}, all_empty(duplicated)) == (lost, duplicated)
    assert 0 == code
    assert [] == problems_logged(leader, follower)
