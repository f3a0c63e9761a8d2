"""Benchmark: the full plan over a large fleet (DESIGN.md 9), and incremental passes (issue 14.1).

Per fleet size (default 10,000 and 100,000 devices) x 40 missing patches each, a 2,000-patch
catalogue, 50 policy objects: a first plan inside an open window (installs issued to every
patchable device), then the full plan once those installs succeeded and a scan confirmed them
(`fullPlan*`, issue 14's "full pass"). Then `IncrementalPlanner` against the full `plan()` on the
same inputs (asserted equal): a pass after nothing changed, after fresh scans on 10% of the
devices, and after an approval commit that adds patches to one client's hotfix list (its prod
devices, ~9% of the fleet, get installs). Wall and CPU seconds, incremental/full in the same run,
the load average, the peak memory (RSS) of the process.

    .venv/bin/python bench/plan.py [--devices N ...] [--json bench/results/plan.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from controller.core.desired import DesiredState
from controller.core.incremental import Changes, IncrementalPlanner
from controller.core.observed import (
    DeviceView,
    JobState,
    JobView,
    ObservedState,
    PatchResult,
    ScanView,
)
from controller.core.patches import PatchRecord
from controller.core.plan import Plan, plan
from controller.kinds.common import Classification, OsFamily, Severity
from controller.sources.loading import SourceFile, load_policy

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # Sunday 02:30 Berlin: the weekly window is open
CLIENTS = [f"client-{i}" for i in range(8)]
SITES = ["fra", "ams", "lon", "nyc"]


def policy_text(hotfix_step: int = 7) -> str:
    """50 policy objects: tenants, groups, baselines, whitelists, approvals, windows, scans."""
    docs = [
        (
            "apiVersion: patchctl/v1\nkind: Tenant\nmetadata: {name: msp}\n"
            f"spec: {{clients: [{', '.join(CLIENTS)}]}}\n"
        )
    ]
    docs.extend(
        f"apiVersion: patchctl/v1\nkind: DeviceGroup\nmetadata: {{name: all-{os_name}, tenant: msp}}\n"
        f"spec: {{selector: {{os: {os_name}}}}}\n"
        for os_name in ("windows", "linux")
    )
    for client in CLIENTS:
        tenant = f"msp/{client}"
        step = hotfix_step if client == CLIENTS[1] else 7  # the commit changes one client
        docs.append(
            f"apiVersion: patchctl/v1\nkind: DeviceGroup\nmetadata: {{name: prod, tenant: {tenant}}}\n"
            "spec: {selector: {labels: {env: prod}}}\n"
        )
        docs.append(
            f"apiVersion: patchctl/v1\nkind: Approval\nmetadata: {{name: hotfix, tenant: {tenant}}}\n"
            f"spec: {{patches: [{', '.join(f'LNX-{i:04}' for i in range(0, 400, step))}], "
            "targets: {groups: [prod]}, reason: bench}\n"
        )
        docs.append(
            f"apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {{name: strict, tenant: {tenant}}}\n"
            "spec: {os: linux, targets: {groups: [prod]}, rules: [{severities: [critical]}]}\n"
        )
        docs.append(
            f"apiVersion: patchctl/v1\nkind: Whitelist\nmetadata: {{name: ids, tenant: {tenant}}}\n"
            f"spec: {{targets: {{groups: [prod]}}, patches: [{{id: LNX-{CLIENTS.index(client):04}}}]}}\n"
        )
    docs.append(
        "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: win, tenant: msp}\n"
        "spec: {os: windows, targets: {groups: [all-windows]}, rules: [{classifications: [security, critical], releasedAfterDays: 7}], exclude: [KB-0013]}\n"
    )
    docs.append(
        "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: lin, tenant: msp}\n"
        "spec: {os: linux, targets: {groups: [all-linux]}, rules: [{classifications: [security], severities: [critical, important]}]}\n"
    )
    docs.append(
        "apiVersion: patchctl/v1\nkind: Whitelist\nmetadata: {name: win, tenant: msp}\n"
        "spec: {targets: {groups: [all-windows]}, patches: [{classifications: [security, critical], vendors: [microsoft]}]}\n"
    )
    docs.append(
        "apiVersion: patchctl/v1\nkind: PatchWindow\nmetadata: {name: weekly, tenant: msp}\n"
        "spec: {targets: {groups: [all-windows, all-linux]}, recurrence: {cron: '0 2 * * SUN'}, "
        "timezone: Europe/Berlin, duration: 4h, cutoff: 1h, approval: auto, "
        "autoApprove: {releasedAfterDays: 3}, rollout: {maxConcurrent: 100%, maxFailures: 5%}}\n"
    )
    docs.append(
        "apiVersion: patchctl/v1\nkind: ScanSchedule\nmetadata: {name: daily}\n"
        "spec: {targets: {selector: {}}, every: 24h}\n"
    )
    while len(docs) < 50:
        n = len(docs)
        docs.append(
            f"apiVersion: patchctl/v1\nkind: Script\nmetadata: {{name: script-{n}, tenant: msp}}\n"
            "spec: {os: linux, shell: bash, content: 'true'}\n"
        )
    return "---\n".join(docs)


def catalogue(rng: random.Random) -> dict[str, PatchRecord]:
    records = {}
    classes = [
        Classification.SECURITY,
        Classification.CRITICAL,
        Classification.BUGFIX,
        Classification.DEFINITION,
    ]
    severities = [Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW]
    for i in range(1000):
        pid = f"KB-{i:04}"
        records[pid] = PatchRecord(
            id=pid,
            os=OsFamily.WINDOWS,
            vendor="microsoft",
            classification=rng.choice(classes),
            severity=rng.choice(severities),
            released=date(2026, 11, 29) - timedelta(days=rng.randint(0, 400)),
            rating=rng.uniform(0, 10),
            superseded_by=("KB-0999",) if i % 97 == 0 else (),
        )
        lid = f"LNX-{i:04}"
        records[lid] = PatchRecord(
            id=lid,
            os=OsFamily.LINUX,
            vendor="debian",
            classification=Classification.SECURITY,
            severity=rng.choice(severities),
            released=date(2026, 11, 29) - timedelta(days=rng.randint(0, 400)),
        )
    return records


def fleet(n: int, rng: random.Random, patches: dict[str, PatchRecord]) -> ObservedState:
    windows_ids = [p for p in patches if p.startswith("KB-")]
    linux_ids = [p for p in patches if p.startswith("LNX-")]
    devices, scans = [], {}
    for i in range(n):
        os_family = OsFamily.WINDOWS if i % 3 else OsFamily.LINUX
        device = DeviceView(
            id=f"dev-{i:06}",
            tenant=f"msp/{CLIENTS[i % len(CLIENTS)]}",
            name=f"host-{i:06}",
            os=os_family,
            os_name="Windows Server 2022" if os_family is OsFamily.WINDOWS else "Debian GNU/Linux",
            os_version="21H2" if os_family is OsFamily.WINDOWS else "12",
            role="gateway" if i % 500 == 0 else "server",
            labels={"env": "prod" if i % 4 else "test", "site": SITES[i % len(SITES)]},
            last_seen=NOW - timedelta(seconds=rng.randint(0, 200)),
            poll_interval=timedelta(seconds=60),
        )
        devices.append(device)
        pool = windows_ids if os_family is OsFamily.WINDOWS else linux_ids
        scans[device.id] = ScanView(
            scanned_at=NOW - timedelta(hours=rng.randint(1, 20)),
            missing=tuple(rng.sample(pool, 40)),
        )
    return ObservedState(devices=tuple(devices), scans=scans, catalogue=patches)


def load(text: str, revision: str) -> DesiredState:
    loaded = load_policy([SourceFile("policies/bench.yaml", text.encode())], revision=revision)
    if loaded.state is None:
        raise SystemExit("\n".join(str(p) for p in loaded.problems))
    return loaded.state


def rescanned(
    observed: ObservedState, share: float, rng: random.Random
) -> tuple[ObservedState, frozenset[str]]:
    """`observed` after a fresh scan (other missing patches) on `share` of the devices."""
    chosen = rng.sample(list(observed.devices), int(len(observed.devices) * share))
    scans = dict(observed.scans)
    for device in chosen:
        pool = [
            p
            for p in observed.catalogue
            if p.startswith("LNX-" if device.os is OsFamily.LINUX else "KB-")
        ]
        scans[device.id] = ScanView(
            scanned_at=NOW, received_at=NOW, missing=tuple(rng.sample(pool, 40))
        )
    changed = ObservedState(
        devices=observed.devices, scans=scans, jobs=observed.jobs, catalogue=observed.catalogue
    )
    return changed, frozenset(d.id for d in chosen)


def timed_pair(
    planner: IncrementalPlanner,
    desired: DesiredState,
    observed: ObservedState,
    changes: Changes,
) -> dict[str, object]:
    """One incremental pass and the full plan of the same inputs (asserted equal): wall and
    CPU seconds of each, and incremental/full. CPU time is the steadier figure on a machine
    shared with other work; the ratio compares two passes of one run."""
    fast, incremental_s, incremental_cpu = timed(
        lambda: planner.plan(desired, observed, now=NOW, changes=changes)
    )
    counts = planner.last
    full, full_s, full_cpu = timed(lambda: plan(desired, observed, now=NOW))
    if not equal(fast, full):
        raise SystemExit("the incremental plan differs from the full plan")
    return {
        "fullSeconds": round(full_s, 3),
        "fullCpuSeconds": round(full_cpu, 3),
        "incrementalSeconds": round(incremental_s, 3),
        "incrementalCpuSeconds": round(incremental_cpu, 3),
        "incrementalOverFull": round(incremental_s / full_s, 3),
        "incrementalOverFullCpu": round(incremental_cpu / full_cpu, 3),
        "planned": counts.planned,
        "reused": counts.reused,
        "issued": len(fast.issue),
    }


def timed(run: Callable[[], Plan]) -> tuple[Plan, float, float]:
    """A plan with its wall and CPU (process) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def equal(one: Plan, other: Plan) -> bool:
    return all(getattr(one, name) == getattr(other, name) for name in Plan.__dataclass_fields__)


def settled(observed: ObservedState, first: Plan) -> ObservedState:
    """The fleet once the first plan's jobs ran: installs succeeded and a later scan no longer
    lists their patches, so nothing is in flight and a new approval can issue installs."""
    done = NOW - timedelta(minutes=10)
    scans = dict(observed.scans)
    jobs = []
    for spec in first.issue:
        installed = dict.fromkeys(spec.patch_ids, PatchResult.INSTALLED)
        jobs.append(
            JobView(
                id=spec.id,
                device_id=spec.device_id,
                kind=spec.kind,
                state=JobState.SUCCEEDED,
                patch_ids=spec.patch_ids,
                window=spec.window,
                occurrence=spec.occurrence,
                created_at=done - timedelta(minutes=10),
                updated_at=done,
                started_at=done - timedelta(minutes=5),
                deadline=spec.deadline,
                results=installed,
            )
        )
        scan = scans.get(spec.device_id)
        if scan is not None:
            scans[spec.device_id] = ScanView(
                scanned_at=NOW - timedelta(minutes=5),
                received_at=NOW - timedelta(minutes=5),
                missing=tuple(p for p in scan.missing if p not in installed),
                installed=tuple(installed),
            )
    return ObservedState(
        devices=observed.devices, scans=scans, jobs=tuple(jobs), catalogue=observed.catalogue
    )


def incremental(
    desired: DesiredState, observed: ObservedState, rng: random.Random
) -> dict[str, object]:
    """Incremental passes after nothing changed, after 10% of the devices reported a fresh
    scan, and after an approval commit (one client's hotfix list, ~12.5% of the fleet, whose
    new patches get installs in the open window): each beside the full plan of the same
    inputs."""
    planner = IncrementalPlanner()
    _, first_s, first_cpu = timed(lambda: planner.plan(desired, observed, now=NOW))
    figures: dict[str, object] = {
        "firstPassSeconds": round(first_s, 3),
        "firstPassCpuSeconds": round(first_cpu, 3),
    }
    figures["nothingChanged"] = timed_pair(planner, desired, observed, Changes())
    changed, ids = rescanned(observed, 0.10, rng)
    figures["reports10Percent"] = timed_pair(planner, desired, changed, Changes(devices=ids))
    commit = load(policy_text(hotfix_step=5), "main@sha1:commit")
    figures["approvalCommit"] = timed_pair(planner, commit, changed, Changes())
    return figures


def measure(devices: int) -> dict[str, object]:
    """Every figure for one fleet size."""
    rng = random.Random(7)
    desired = load(policy_text(), "main@sha1:bench")
    started = time.perf_counter()
    observed = fleet(devices, rng, catalogue(rng))
    build_s = time.perf_counter() - started
    first, first_s, first_cpu = timed(lambda: plan(desired, observed, now=NOW))
    after = settled(observed, first)
    again, again_s, again_cpu = timed(lambda: plan(desired, after, now=NOW))
    return {
        "devices": devices,
        "missingPerDevice": 40,
        "catalogue": len(observed.catalogue),
        "policyObjects": len(desired),
        "buildObservedSeconds": round(build_s, 3),
        "firstPlanSeconds": round(first_s, 3),
        "firstPlanCpuSeconds": round(first_cpu, 3),
        "firstPlanJobs": len(first.issue),
        "complianceRecords": len(first.compliance),
        "fullPlanSeconds": round(again_s, 3),
        "fullPlanCpuSeconds": round(again_cpu, 3),
        "fullPlanJobs": len(again.issue),
        "incremental": incremental(desired, after, rng),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--json", "--out", dest="out", type=Path, default=Path("bench/results/plan.json")
    )
    args = parser.parse_args()
    figures = {
        "fleets": [measure(n) for n in args.devices],
        "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "targets": {
            "planSeconds": 5.0,
            "fullPlanSeconds100k": 2.0,
            "approvalCommitSeconds": 1.0,
            "peakRssMiB": 1024,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
