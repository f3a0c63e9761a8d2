"""Incremental reconciles (issue 14 items 1-2): what a pass costs when little changed.

The service's reconciler (`controller.runtime.reconcile.Reconciler`, real git repository, real
SQLite store, a clock the bench moves) over a fleet written straight into the store (Linux
devices in tenant msp/c0, ten rings by label, each with a scan missing `--missing` patches).
Measured, for each fleet size (`--devices`, `--large`):

- (d) `fullPassSeconds`: a full pass (first pass: reads the whole store, plans every device);
  `resyncPassSeconds`: the periodic full pass (resync) once nothing changed: reads everything
  again, compares it with the incremental state, plans every device, writes no compliance;
- (a) `approvalToJobsSeconds`: a commit approving a patch for ring r0 (10% of the fleet) → the
  pass that issues its install jobs (timed from the commit to the end of that pass);
- (b) reports that change nothing (heartbeats and repeated scans of `--quiet` devices) → the
  next pass: `devicesRead` (from the store) and `devicesPlanned` (`PassCounts.planned`; 0 once
  the planner reuses unchanged devices, issue 14 item 1 `incplan`).
- (e) `resyncWithHistorySeconds`: the resync once every device has `--history` finished
  installs within the job horizon (`store.observed.JOB_HORIZON`: a month of weekly windows
  leaves four or five), as a fleet in use has: the figure (d) leaves out, since (d)'s fleet has
  never had a job; `ledgerJobs` counts the ledger it plans from. `quietPassWithHistorySeconds`:
  the pass after it, nothing having changed (what the ledger costs an incremental pass);
  `approvalToJobsWithHistorySeconds`: (a) again on that fleet (another patch for ring r1), and
  `passAfterApprovalWithHistorySeconds`: the pass after it, which reads back the 10% of
  devices whose ledger the approval's jobs changed (every pass of a patch window is like it:
  agents report job events all along).

And at `--devices` only: (c) report-ingest latency while passes run (`--rate` reports per
second for `--seconds`, written through the agent API's batching writer,
`controller.server.writer.Writer`, as the HTTP service writes them after parsing; half
heartbeats, half newer scans, `--changing` of those with a changed missing set): p50/p99/max
from the instant each report was due, for passes started as the service starts them
(`service`: a `ReconcileLoop` told by the writer after changing batches, debounced), for
passes back to back (`incremental`, and `full`: every pass reads everything), and with no
pass at all (`idle`: the floor on this machine at its current load).

    .venv/bin/python bench/incremental.py [--devices 10000] [--large 100000] [--json FILE]
        [--history 4] [--rate 50] [--seconds 10] [--changing 0.1]
        [--modes idle,service,incremental,full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)  # Sunday 02:30 Berlin: the weekly window is open
TENANT = "msp/c0"
RINGS = 10

POLICY = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: msp}
spec: {clients: [c0]}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: all-linux, tenant: msp}
spec: {selector: {os: linux}}
---
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: ring0, tenant: msp/c0}
spec: {selector: {labels: {ring: r0}}}
---
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: lin, tenant: msp}
spec: {os: linux, targets: {groups: [all-linux]}, rules: [{severities: [critical]}]}
---
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: weekly, tenant: msp}
spec: {targets: {groups: [all-linux]}, recurrence: {cron: '0 2 * * SUN'},
  timezone: Europe/Berlin, duration: 4h, cutoff: 1h}
"""

APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: hotfix, tenant: msp/c0}
spec: {patches: [LNX-0001], targets: {groups: [ring0]}, reason: bench}
"""

# the same with a month of installs behind every device: ring r1's devices, another patch
APPROVAL_WITH_HISTORY = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: ring1, tenant: msp/c0}
spec: {selector: {labels: {ring: r1}}}
---
apiVersion: patchctl/v1
kind: Approval
metadata: {name: hotfix-r1, tenant: msp/c0}
spec: {patches: [LNX-0002], targets: {groups: [ring1]}, reason: bench}
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.now += timedelta(seconds=seconds)
            return self.now


def build_fleet(store: Any, count: int, missing: int) -> list[str]:
    """`count` devices written in bulk, each with an agent scan missing `missing` patches."""
    from controller.core.patches import PatchRecord  # noqa: PLC0415
    from controller.kinds.common import Classification, OsFamily, Severity  # noqa: PLC0415
    from controller.store import catalogue, reports, schema, tokens  # noqa: PLC0415

    catalogue.upsert_records(
        store,
        [
            PatchRecord(
                id=f"LNX-{i:04}",
                os=OsFamily.LINUX,
                vendor="ubuntu",
                title=f"patch {i}",
                cves=(f"CVE-2026-{i:04}",),
                rating=9.0,
                classification=Classification.SECURITY,
                severity=Severity.CRITICAL,
                released=date(2026, 10, 1),
            )
            for i in range(max(missing, 2))
        ],
        now=NOW - timedelta(days=1),
    )
    scanned = NOW - timedelta(hours=1)  # `quiet_reports` repeats this scan
    scan = reports.Scan(
        scanned_at=scanned,
        reboot_required=False,
        missing=tuple((f"LNX-{i:04}", {}) for i in range(missing)),
    )
    document = json.loads(scan.stored_document())
    # as `reports.write_reports` would have stored it: a later scan with the same sets is no
    # change of a planner input
    digest = f"{scan.quick_digest()}:{scan.planning_digest()}"
    ids = [str(uuid.UUID(int=i + 1)) for i in range(count)]
    with store.write() as conn:
        tokens.ensure_tenant(conn, TENANT, now=NOW)
        for start in range(0, count, 5000):
            chunk = ids[start : start + 5000]
            conn.execute(
                schema.devices.insert(),
                [
                    {
                        "id": device_id,
                        "tenant": TENANT,
                        "name": f"web-{start + n:06d}",
                        "hostname": f"web-{start + n:06d}",
                        "os_family": "linux",
                        "os_name": "Ubuntu",
                        "os_version": "24.04",
                        "role": "server",
                        "labels": {"ring": f"r{(start + n) % RINGS}"},
                        "facts": {},
                        "agent_version": "1.0",
                        "poll_interval": 3600,
                        "enrolled_at": NOW - timedelta(days=2),
                        "last_seen": NOW,
                        "last_scan_at": scanned,
                        "last_scan_received_at": scanned,
                        "reboot_required": False,
                        "scan_digest": digest,
                    }
                    for n, device_id in enumerate(chunk)
                ],
            )
            conn.execute(
                schema.patch_states.insert(),
                [
                    {
                        "device_id": device_id,
                        "source": "agent",
                        "observed_at": scanned,
                        "patches": document,
                    }
                    for device_id in chunk
                ],
            )
    return ids


def write_history(store: Any, ids: list[str], *, per_device: int) -> int:
    """`per_device` succeeded installs of LNX-0000 for each device, one a week before the
    fleet's scan (which verified them), in the weekly window's earlier occurrences, written in
    bulk with their planner change rows; answers how many."""
    from controller.store import changes, schema  # noqa: PLC0415

    written = 0
    with store.write() as conn:
        for week in range(1, per_device + 1):
            start = NOW - timedelta(weeks=week)
            occurrence = start.strftime("%Y-%m-%dT%H:%MZ")
            for first in range(0, len(ids), 5000):
                conn.execute(
                    schema.jobs.insert(),
                    [
                        {
                            "id": f"install-{week}-{device_id}",
                            "device_id": device_id,
                            "tenant": TENANT,
                            "kind": "install",
                            "patch_ids": ["LNX-0000"],
                            "payload": {"reboot": "if-required", "patches": ["LNX-0000"]},
                            "state": "succeeded",
                            "revision": "main@sha1:bench",
                            "window_key": f"msp/weekly@{occurrence}",
                            "deadline": start + timedelta(hours=3),
                            "created_at": start,
                            "updated_at": start + timedelta(minutes=20),
                            "delivered_at": start + timedelta(minutes=1),
                            "finished_at": start + timedelta(minutes=20),
                            "results": {"LNX-0000": {"result": "installed"}},
                            "started_at": start + timedelta(minutes=2),
                            "run_timeout": 7200,
                        }
                        for device_id in ids[first : first + 5000]
                    ],
                )
            written += len(ids)
        changes.record_devices(conn, ids, now=NOW)
    return written


def quiet_reports(ids: list[str], *, missing: int) -> list[Any]:
    """Heartbeats, and repeats of the stored scan (same `scannedAt`): nothing changes."""
    from controller.store import reports  # noqa: PLC0415

    repeated = reports.Scan(
        scanned_at=NOW - timedelta(hours=1),
        reboot_required=False,
        missing=tuple((f"LNX-{i:04}", {}) for i in range(missing)),
    )
    return [
        reports.Report(device_id=device_id, scan=repeated if n % 2 else None)
        for n, device_id in enumerate(ids)
    ]


def passes(reconciler: Any, clock: Clock) -> dict[str, Any]:
    clock.advance(1)
    started = time.perf_counter()
    outcome = reconciler.reconcile()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), **outcome.counts}


def setup(tmp: str, count: int, missing: int) -> tuple[Any, Any, Any, Clock, list[str]]:
    from controller.runtime.reconcile import PolicySource, Reconciler  # noqa: PLC0415
    from controller.store import open_store  # noqa: PLC0415
    from controller.testing import PolicyRepo  # noqa: PLC0415

    repo = PolicyRepo(Path(tmp) / "repo")
    repo.write("policies/policy.yaml", POLICY)
    repo.commit("policy")
    store = open_store(f"sqlite:///{tmp}/state.db")
    ids = build_fleet(store, count, missing)
    clock = Clock()
    reconciler = Reconciler(
        store=store,
        source=PolicySource(str(repo.path), "main", Path(tmp) / "state"),
        clock=clock,
        resync=timedelta(days=1),
    )
    return repo, store, reconciler, clock, ids


def fleet_run(count: int, args: argparse.Namespace) -> dict[str, Any]:
    """(d), (a) and (b) at one fleet size."""
    from controller.store import reports  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        repo, store, reconciler, clock, ids = setup(tmp, count, args.missing)
        built = time.perf_counter() - started
        full = passes(reconciler, clock)
        passes(reconciler, clock)
        reconciler.resync = timedelta(0)  # due at the next pass
        resync = passes(reconciler, clock)
        reconciler.resync = timedelta(days=1)
        repo.write("policies/approval.yaml", APPROVAL)
        committed = time.perf_counter()
        repo.commit("approve LNX-0001 for ring r0")
        approval = passes(reconciler, clock)
        approval_seconds = time.perf_counter() - committed
        passes(reconciler, clock)  # reads back the devices given jobs
        quiet = ids[: args.quiet]
        with store.write() as conn:
            reports.write_reports(
                conn, quiet_reports(quiet, missing=args.missing), now=clock.advance(1)
            )
        after_quiet = passes(reconciler, clock)
        history = write_history(store, ids, per_device=args.history)
        passes(reconciler, clock)  # reads the devices whose ledger grew
        reconciler.resync = timedelta(0)
        with_history = passes(reconciler, clock)
        reconciler.resync = timedelta(days=1)
        quiet_with_history = passes(reconciler, clock)  # nothing changed: what the ledger costs
        repo.write("policies/approval-r1.yaml", APPROVAL_WITH_HISTORY)
        committed = time.perf_counter()
        repo.commit("approve LNX-0002 for ring r1")
        approval_with_history = passes(reconciler, clock)
        approval_with_history_seconds = time.perf_counter() - committed
        read_back = passes(reconciler, clock)  # the ledgers of the devices given jobs changed
        store.close()
    return {
        "devices": count,
        "buildSeconds": round(built, 1),
        "fullPassSeconds": full["seconds"],
        "resyncPassSeconds": resync["seconds"],
        "resyncPass": _pick(resync),
        "approvalToJobsSeconds": round(approval_seconds, 3),
        "approvalPass": _pick(approval),
        "quietReports": len(quiet),
        "afterQuietReports": _pick(after_quiet),
        "historyJobs": history,
        "resyncWithHistorySeconds": with_history["seconds"],
        "resyncWithHistory": _pick(with_history),
        "quietPassWithHistorySeconds": quiet_with_history["seconds"],
        "approvalToJobsWithHistorySeconds": round(approval_with_history_seconds, 3),
        "approvalWithHistory": _pick(approval_with_history),
        "passAfterApprovalWithHistorySeconds": read_back["seconds"],
    }


LATENCY_MODES = ("idle", "service", "incremental", "full")


def latency_run(args: argparse.Namespace, *, mode: str) -> dict[str, Any]:
    """(c): report latencies while passes run, reports written through the service's writer.

    `mode` "idle": no pass runs (the floor: the writer alone on this machine, at its load);
    "service": passes are started as the service starts them, by a `ReconcileLoop` the writer
    tells after each batch that changed a planner input (debounced, `REPORT_DEBOUNCE`);
    "incremental" and "full": passes back to back (the worst case), "full" forgetting the
    observed state before each pass."""
    from controller.runtime.loop import ReconcileLoop  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        _repo, store, reconciler, clock, ids = setup(tmp, args.devices, args.missing)
        reconciler.reconcile()
        durations: list[float] = []
        stop = threading.Event()
        service: ReconcileLoop | None = None
        thread: threading.Thread | None = None
        if mode == "service":
            service = ReconcileLoop(
                reconciler, on_outcome=lambda o: durations.append(o.duration_ms / 1000)
            )
            service.start()
            service.wait_idle(60)  # the start pass
            durations.clear()
        elif mode != "idle":

            def loop() -> None:
                while not stop.is_set():
                    if mode == "full":
                        reconciler.observer.forget()
                    started = time.perf_counter()
                    reconciler.reconcile()
                    durations.append(time.perf_counter() - started)

            thread = threading.Thread(target=loop)
            thread.start()
        on_change = service.reports_arrived if service is not None else None
        latencies, writer = asyncio.run(_send_reports(args, store, clock, ids, on_change))
        if service is not None:
            service.stop()
        stop.set()
        if thread is not None:
            thread.join()
        store.close()
    latencies.sort()
    return {
        "passes": mode,
        "devices": args.devices,
        "reportsPerSecond": args.rate,
        "changingShare": args.changing,
        "reports": len(latencies),
        "passesRun": len(durations),
        "passSecondsMean": round(statistics.mean(durations), 3) if durations else None,
        "writer": writer,
        "latencyMs": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p99": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
    }


async def _send_reports(
    args: argparse.Namespace,
    store: Any,
    clock: Clock,
    ids: list[str],
    on_change: Any,
) -> tuple[list[float], dict[str, int]]:
    """`--rate` reports a second for `--seconds` through `controller.server.writer.Writer` (the
    agent API's path after parsing and authentication: its batching, its own connection with a
    short lock wait, the hand-off to a worker thread); each latency from the instant the report
    was due to the instant it was stored. Half heartbeats, half newer scans; `--changing` of
    the scans change the missing set (a planner input: the writer then triggers a pass)."""
    from controller.server.writer import Writer  # noqa: PLC0415
    from controller.store import reports  # noqa: PLC0415

    writer = Writer(store, clock=clock, on_change=on_change)
    writer.start()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    changing = round(1 / args.changing) if args.changing > 0 else 0

    async def send(report: Any, due: float) -> None:
        await writer.report(report)
        latencies.append(loop.time() - due)

    tasks = []
    begin = loop.time()
    for index in range(int(args.rate * args.seconds)):
        due = begin + index / args.rate
        await asyncio.sleep(max(due - loop.time(), 0))
        at = clock.advance(0.02)
        scan = None
        if index % 2:
            # a changing scan misses one patch fewer than the device's stored one (each device
            # reports once in a run shorter than the fleet: `--devices` / `--rate` seconds)
            fewer = changing and (index // 2) % changing == 0
            count = args.missing - 1 if fewer else args.missing
            scan = reports.Scan(
                scanned_at=at,
                reboot_required=False,
                missing=tuple((f"LNX-{i:04}", {}) for i in range(count)),
            )
        report = reports.Report(ids[index % len(ids)], scan=scan)
        tasks.append(asyncio.create_task(send(report, due)))
    await asyncio.gather(*tasks)
    await writer.stop()
    counts = {
        "batches": writer.batches,
        "handedOff": writer.handed_off,
        "changing": writer.changing,
    }
    return latencies, counts


def _pick(counts: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "seconds",
        "fullPass",
        "devicesRead",
        "devicesPlanned",
        "ledgerJobs",
        "jobsIssued",
        "drift",
    )
    return {key: counts.get(key) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000, help="fleet for (a)-(d)")
    parser.add_argument(
        "--large", type=int, default=100_000, help="fleet for (a), (b), (d); 0: skip"
    )
    parser.add_argument("--missing", type=int, default=20, help="missing patches per device")
    parser.add_argument("--quiet", type=int, default=1000, help="devices sending quiet reports")
    parser.add_argument(
        "--history", type=int, default=4, help="finished installs per device for (e)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="reports per second in (c)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of (c)")
    parser.add_argument(
        "--changing", type=float, default=0.1, help="share of the scans in (c) that change a set"
    )
    parser.add_argument(
        "--modes",
        type=lambda text: [m for m in text.split(",") if m],
        default=list(LATENCY_MODES),
        help=f"(c) runs, comma-separated: {','.join(LATENCY_MODES)}",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sizes = [args.devices] + ([args.large] if args.large else [])
    result = {
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "fleets": [fleet_run(count, args) for count in sizes],
        "reportLatency": [latency_run(args, mode=mode) for mode in args.modes],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


def _cpus() -> int:
    import os  # noqa: PLC0415

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
