"""Benchmark: the fleet metrics of `/metrics` over a large store.

10,000 devices in 8 client tenants of one partner, 2 compliance rows and 5 jobs per device,
pending approvals on a tenth of them, 5,000 stored reconcile runs. Reports the time of one
computation of every fleet metric family for the partner's scope (what a scrape costs once
every 15 seconds; the median of `--repeat` runs) and of a cached scrape, and the size of the
answer. Numbers only: no thresholds (timings belong in this report, never in a test).

    .venv/bin/python bench/metrics.py [--devices N] [--db URL] [--out bench/results/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.runtime import fleet_metrics
from controller.server.metrics import FleetCache, render_families
from controller.store import open_store, schema, status

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CLIENTS = [f"msp/client-{i}" for i in range(8)]
RESULTS = Path(__file__).resolve().parent / "results" / "metrics.json"
RUNS = 5_000
JOB_STATES = ["pending", "delivered", "succeeded", "failed", "expired"]


def populate(url: str, devices: int) -> None:
    """Write the fleet in a few bulk statements."""
    store = open_store(url)
    try:
        with store.write() as conn:
            conn.execute(
                schema.tenants.insert(),
                [{"path": "msp", "parent": None, "created_at": NOW}]
                + [{"path": c, "parent": "msp", "created_at": NOW} for c in CLIENTS],
            )
            rows = [
                {
                    "id": f"dev-{i:06}",
                    "tenant": CLIENTS[i % len(CLIENTS)],
                    "name": f"host-{i:06}",
                    "hostname": f"host-{i:06}",
                    "os_family": "windows" if i % 3 == 0 else "linux",
                    "os_name": "os",
                    "os_version": "1",
                    "role": "server",
                    "labels": {},
                    "facts": {},
                    "agent_version": "1.0",
                    "poll_interval": 60,
                    "enrolled_at": NOW - timedelta(days=30),
                    "last_seen": NOW - timedelta(minutes=i % 5000),
                    "last_scan_at": NOW,
                    "reboot_required": i % 7 == 0,
                    "machine_id": None,
                }
                for i in range(devices)
            ]
            conn.execute(schema.devices.insert(), rows)
            conn.execute(
                schema.compliance.insert(),
                [
                    {
                        "device_id": row["id"],
                        "baseline": f"msp/{baseline}",
                        "tenant": row["tenant"],
                        "state": ["compliant", "non-compliant", "unknown"][i % 3],
                        "revision": "main@sha1:abc",
                        "evaluated_at": NOW,
                        "patches": [],
                    }
                    for i, row in enumerate(rows)
                    for baseline in ("lin", "strict")
                ],
            )
            conn.execute(
                schema.jobs.insert(),
                [
                    {
                        "id": f"{row['id']}-{n}",
                        "device_id": row["id"],
                        "tenant": row["tenant"],
                        "kind": "install" if n % 2 else "scan",
                        "patch_ids": [],
                        "payload": {},
                        "state": JOB_STATES[(i + n) % len(JOB_STATES)],
                        "revision": "main@sha1:abc",
                        "created_at": NOW,
                        "updated_at": NOW,
                        "results": {},
                    }
                    for i, row in enumerate(rows)
                    for n in range(5)
                ],
            )
            conn.execute(
                schema.reconcile_runs.insert(),
                [
                    {
                        "started_at": NOW - timedelta(minutes=n),
                        "finished_at": NOW - timedelta(minutes=n) + timedelta(seconds=n % 40),
                        "revision": f"main@sha1:{n // 1000:03}",
                        "result": "applied" if n % 10 else "policy-invalid",
                        "duration_ms": (n % 40) * 1000,
                        "counts": {},
                    }
                    for n in range(RUNS)
                ],
            )
            pending = {row["id"]: ["LNX-0001", "LNX-0002"] for row in rows[::10]}
            status.set_status(conn, "plan", {"pendingApprovalsByDevice": pending}, now=NOW)
    finally:
        store.close()


def measure(url: str, *, repeat: int) -> dict[str, object]:
    store = open_store(url)
    try:
        timings = []
        text = ""
        for _ in range(repeat):
            started = time.perf_counter()
            with store.read() as conn:
                families = fleet_metrics.collect(conn, scope="msp", now=NOW)
            text = render_families(families)
            timings.append(time.perf_counter() - started)
        cache = FleetCache(store, clock=lambda: NOW)
        cache.render("msp")
        started = time.perf_counter()
        cache.render("msp")
        cached = time.perf_counter() - started
    finally:
        store.close()
    return {
        "computeSecondsMedian": round(statistics.median(timings), 4),
        "computeSecondsMax": round(max(timings), 4),
        "cachedScrapeSeconds": round(cached, 6),
        "answerBytes": len(text.encode()),
        "answerLines": text.count("\n"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="a SQLAlchemy URL of an empty database (default: SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        populate(url, args.devices)
        setup = time.perf_counter() - started
        result = {
            "devices": args.devices,
            "jobs": args.devices * 5,
            "complianceRows": args.devices * 2,
            "reconcileRuns": RUNS,
            "engine": url.split(":", 1)[0],
            "setupSeconds": round(setup, 2),
            **measure(url, repeat=args.repeat),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
