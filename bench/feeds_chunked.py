"""Feed re-evaluation in chunks: the write lock it holds and the reports it delays (issue 14.4).

On SQLite in a temp dir: N Debian devices (synthetic inventories of `--packages` packages each)
report against a catalogue, then an import changes the catalogue (fixes for half the packages
that every device misses or no longer misses) and the fleet is re-evaluated, twice from the
same copy of the database:

- `one-transaction`: `controller.store.findings.reevaluate_fleet` in one write transaction
  (the behaviour before issue 14.4; also `--chunk-size N` of the chunked pass comes close);
- `chunked`: `controller.runtime.feeds.reevaluate_fleet`, `--chunk-size` devices per write
  transaction (default `settings.REEVALUATION_CHUNK`).

Measured for each: the longest write transaction of the pass (from the lock taken, at the
store's fence, to its commit), the pass's wall time, and the latency of agent reports ingested
meanwhile by another process (up to `--rate` reports per second, each a write transaction with
an inventory, as the service's writer does: latency from the start of the write, so waiting for
the lock counts, to its commit; a report still locked out after the store's busy timeout (15 s)
fails, is counted, and its wait counts as its latency).
Ratios one-transaction / chunked.

    .venv/bin/python bench/feeds_chunked.py [--devices 20000] [--packages 60] [--rate 50]
    .venv/bin/python bench/feeds_chunked.py --devices 100000

Prints the figures and writes them to `--json FILE` (default bench/results/feeds_chunked.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "feeds_chunked.json"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
RELEASE = "debian:12"
BATCH = 2_000  # devices enrolled and reported per setup transaction


def package_name(index: int) -> str:
    return f"libbench{index:03d}"


def inventory_packages(device: int, count: int, *, bump: int = 0) -> list[dict[str, Any]]:
    """A device's packages: each at revision 1 or 2 (seeded by device), `bump` raising one."""
    rng = random.Random(device)  # a reproducible fleet
    return [
        {
            "name": package_name(i),
            "version": f"1.0-{rng.choice((1, 2)) + (bump if i == 0 else 0)}",
            "arch": "amd64",
        }
        for i in range(count)
    ]


def records(packages: int, *, revision: int, share: float) -> tuple[Any, ...]:
    """Fixes at `1.0-<revision>` for the first `share` of the packages."""
    from controller.core.patches import FixedPackage, PatchRecord  # noqa: PLC0415
    from controller.kinds.common import Classification, OsFamily  # noqa: PLC0415

    version = f"1.0-{revision}"
    return tuple(
        PatchRecord(
            id=f"{package_name(i)}={version}",
            os=OsFamily.LINUX,
            classification=Classification.SECURITY,
            packages=(FixedPackage(package_name(i), version, RELEASE, "amd64", package_name(i)),),
        )
        for i in range(int(packages * share))
    )


def build(path: Path, *, devices: int, packages: int) -> list[str]:
    """The fleet, reported against the first catalogue, then the import not yet evaluated."""
    from controller.store import catalogue, open_store, reports  # noqa: PLC0415
    from controller.store import devices as store_devices  # noqa: PLC0415

    store = open_store(f"sqlite:///{path}")
    ids: list[str] = []
    try:
        catalogue.upsert_records(store, records(packages, revision=2, share=0.3), now=NOW)
        for start in range(0, devices, BATCH):
            with store.write() as conn:
                batch = [
                    store_devices.enrol(
                        conn,
                        store_devices.Enrolment(
                            tenant="bench",
                            hostname=f"debian-{n:06d}",
                            os_family="linux",
                            os_name="Debian GNU/Linux",
                            os_version="12",
                            role="server",
                            agent_version="bench",
                        ),
                        poll_interval=60,
                        now=NOW,
                    ).device_id
                    for n in range(start, min(start + BATCH, devices))
                ]
                found = [
                    reports.Report(
                        device_id,
                        inventory=reports.Inventory(
                            None, None, inventory_packages(start + n, packages)
                        ),
                    )
                    for n, device_id in enumerate(batch)
                ]
                reports.write_reports(conn, found, now=NOW)
                ids.extend(batch)
        catalogue.upsert_records(store, records(packages, revision=3, share=0.5), now=NOW)
    finally:
        store.close()
    return ids


def report_loop(url: str, ids: list[str], packages: int, rate: float, stop: Any, out: Any) -> None:
    """Another process: reports with inventories at `rate` per second until `stop`; sends the
    latencies (seconds from the write's start to its commit, or to "database is locked") and
    the count of failed reports back through `out`."""
    import sqlalchemy as sa  # noqa: PLC0415

    from controller.store import open_store, reports  # noqa: PLC0415

    store = open_store(url, migrate=False)
    latencies: list[float] = []
    failed = 0
    due = time.perf_counter()
    sent = 0
    try:
        while not stop.is_set():
            # paced at `rate`, but a report never waits for earlier ones' backlog: the latency
            # measured is the lock's, not this process's own throughput on a busy machine
            due = max(due + 1 / rate, time.perf_counter())
            time.sleep(max(0.0, due - time.perf_counter()))
            device = sent % len(ids)
            inventory = reports.Inventory(
                None, None, inventory_packages(device, packages, bump=1 + sent % 2)
            )
            attempt = time.perf_counter()
            try:
                with store.write() as conn:
                    report = reports.Report(ids[device], inventory=inventory)
                    reports.write_reports(conn, [report], now=NOW)
            except sa.exc.OperationalError:  # "database is locked" after the busy timeout
                failed += 1  # its wait counts below as a latency (a lower bound)
            latencies.append(time.perf_counter() - attempt)
            sent += 1
    finally:
        store.close()
        out.put((latencies, failed))


def run(mode: str, path: Path, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import sqlalchemy as sa  # noqa: PLC0415

    from controller.runtime import feeds  # noqa: PLC0415
    from controller.store import findings, open_store  # noqa: PLC0415

    url = f"sqlite:///{path}"
    writes: list[float] = []
    taken: list[float] = []

    def lock_taken(_conn: Any) -> None:  # the fence runs once BEGIN IMMEDIATE holds the lock
        taken.append(time.perf_counter())

    def ended(_conn: Any) -> None:
        if taken:
            writes.append(time.perf_counter() - taken.pop())

    store = open_store(url, migrate=False).fenced(lock_taken)
    sa.event.listen(store.engine, "commit", ended)
    sa.event.listen(store.engine, "rollback", ended)
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    reporter = context.Process(
        target=report_loop, args=(url, ids, args.packages, args.rate, stop, out)
    )
    reporter.start()
    time.sleep(args.warmup)  # the reporter's imports and first reports, before the pass
    started = time.perf_counter()
    try:
        if mode == "one-transaction":
            with store.write() as conn:
                evaluation = findings.reevaluate_fleet(conn, now=NOW)
        else:
            evaluation = feeds.reevaluate_fleet(
                store, now=NOW, chunk_size=args.chunk_size
            ).evaluation
        seconds = time.perf_counter() - started
        time.sleep(args.warmup)  # reports queued behind the last commit land
    finally:
        stop.set()
        latencies, failed = out.get(timeout=120)
        reporter.join(timeout=60)
        store.close()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "pass_s": round(seconds, 2),
        "devices": evaluation.devices,
        "findings": evaluation.findings,
        "write_transactions": len(writes),
        "longest_write_ms": round(max(writes) * 1000, 1),
        "reports": len(ms),
        "reports_failed_locked": failed,
        "report_p50_ms": round(statistics.median(ms), 1),
        "report_p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        "report_max_ms": round(ms[-1], 1),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from controller.runtime import settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000, help="e.g. 100000")
    parser.add_argument("--packages", type=int, default=60, help="packages per inventory")
    parser.add_argument("--chunk-size", type=int, default=settings.REEVALUATION_CHUNK)
    parser.add_argument("--rate", type=float, default=50.0, help="reports per second meanwhile")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before/after a pass")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        started = time.perf_counter()
        ids = build(base, devices=args.devices, packages=args.packages)
        setup_s = time.perf_counter() - started
        runs = {}
        for mode in ("one-transaction", "chunked"):
            copy = Path(tmp) / f"{mode}.db"
            shutil.copyfile(base, copy)  # the store was closed: WAL checkpointed into the file
            runs[mode] = run(mode, copy, ids, args)
            copy.unlink()
    before, after = runs["one-transaction"], runs["chunked"]
    figures = {
        "bench": "feeds_chunked",
        "devices": args.devices,
        "packages_per_device": args.packages,
        "chunk_size": args.chunk_size,
        "report_rate_per_s": args.rate,
        "setup_s": round(setup_s, 1),
        "runs": runs,
        "ratios_one_transaction_over_chunked": {
            key: round(before[key] / after[key], 1) if after[key] else None
            for key in ("longest_write_ms", "report_p99_ms", "report_max_ms", "pass_s")
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    text = json.dumps(figures, indent=2)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
